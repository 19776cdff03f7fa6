// eslint-plugin-redos ships no types; the gate test only hands the plugin object to ESLint.
declare module 'eslint-plugin-redos' {
  const plugin: import('eslint').ESLint.Plugin;
  export default plugin;
}
