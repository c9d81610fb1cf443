// Vite builds the workspace into dist/, served by omnihubd at /workspace/.
// esbuild compiles the JSX for Preact directly: no Babel preset needed.
import { defineConfig } from "vitest/config";

declare const process: { env: Record<string, string | undefined> }; /* Node runs this file */

export default defineConfig({
  base: "/workspace/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  /* `npm run dev`: the API and the WebSocket of a running omnihubd */
  server: {
    proxy: {
      "/v1": { target: process.env.OMNIHUB_URL ?? "http://127.0.0.1:8080", ws: true },
    },
  },
  build: { outDir: "dist", emptyOutDir: true, target: "es2020", sourcemap: false },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
