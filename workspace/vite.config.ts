// Vite builds the workspace into dist/, served by omnihubd at /workspace/.
// esbuild compiles the JSX for Preact directly: no Babel preset needed.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/workspace/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, target: "es2020", sourcemap: false },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
