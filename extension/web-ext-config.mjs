// web-ext settings: keep the linter and packager to the extension's own files.
export default {
  ignoreFiles: ['package.json', 'package-lock.json', 'web-ext-config.mjs', 'node_modules', 'icons/icon.svg'],
};
