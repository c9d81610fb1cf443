// main.tsx - entry point: sign in (?token= or the form), then the app.
import { render } from "preact";
import { App } from "./app";
import "./style.css";

render(<App />, document.getElementById("app")!);
