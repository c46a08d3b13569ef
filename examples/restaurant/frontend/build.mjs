// Builds src/ into dist/ with Node built-ins only:
//
//   dist/index.html                    the page, no-cache
//   dist/assets/index-<hash8>.js|css   content-hashed, cacheable forever
//   dist/assets/<image>-<hash8>.<ext>  content-hashed images
//   dist/build.json                    the version and the asset names
//
// <hash8> is the first 8 hex digits of the SHA-256 of the file's content, so
// the same sources and BUILD_VERSION always give the same names and bytes.
// BUILD_VERSION (default "dev") goes into <meta name="version"> and the JS.
// BUILD_OUT (default dist) changes the output directory.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(root, "src");
const dist = path.resolve(root, process.env.BUILD_OUT || "dist");
const assetsDir = path.join(dist, "assets");

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

const version = process.env.BUILD_VERSION || "dev";
// The version lands in HTML and JS; keep it to characters that need no thought.
if (!/^[A-Za-z0-9][A-Za-z0-9._+:-]{0,99}$/.test(version)) {
  fail(`BUILD_VERSION ${JSON.stringify(version)} must be 1-100 of A-Z a-z 0-9 . _ + : - (starting with a letter or digit)`);
}

const hash8 = (content) => createHash("sha256").update(content).digest("hex").slice(0, 8);

function hashedName(name, content) {
  const ext = path.extname(name);
  return `${path.basename(name, ext)}-${hash8(content)}${ext}`;
}

// replaceAll swaps a placeholder that must be present, so a template edit
// that loses one fails the build instead of shipping a broken page.
function replaceAll(text, from, to, file) {
  if (!text.includes(from)) fail(`${file} does not contain ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

// rewriteImages points every "img/<file>" reference at the hashed copy.
function rewriteImages(text, images, prefix) {
  // Longest names first, so img/a.svg cannot clobber img/a.svg.bak.
  const names = [...images.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  for (const name of names) text = text.split(`img/${name}`).join(prefix + images.get(name));
  return text;
}

const written = [];
async function emit(rel, content) {
  await writeFile(path.join(dist, rel), content);
  written.push([rel, Buffer.byteLength(content)]);
}

await rm(dist, { recursive: true, force: true });
await mkdir(assetsDir, { recursive: true });

// Images first: the CSS, JS and HTML refer to their hashed names.
const images = new Map();
const imgDir = path.join(src, "img");
for (const name of (await readdir(imgDir)).sort()) {
  const content = await readFile(path.join(imgDir, name));
  const hashed = hashedName(name, content);
  images.set(name, hashed);
  await emit(`assets/${hashed}`, content);
}

// The stylesheet sits next to the images in assets/.
const css = rewriteImages(await readFile(path.join(src, "style.css"), "utf8"), images, "");
const cssName = hashedName("index.css", css);
await emit(`assets/${cssName}`, css);

let js = await readFile(path.join(src, "app.js"), "utf8");
js = replaceAll(js, '"__BUILD_VERSION__"', JSON.stringify(version), "src/app.js");
js = rewriteImages(js, images, "assets/");
const jsName = hashedName("index.js", js);
await emit(`assets/${jsName}`, js);

let html = await readFile(path.join(src, "index.html"), "utf8");
html = replaceAll(html, "%BUILD_VERSION%", version, "src/index.html");
html = replaceAll(html, 'href="style.css"', `href="assets/${cssName}"`, "src/index.html");
html = replaceAll(html, 'src="app.js"', `src="assets/${jsName}"`, "src/index.html");
html = rewriteImages(html, images, "assets/");
await emit("index.html", html);

const manifest = {
  version,
  assets: Object.fromEntries(
    [["index.css", cssName], ["index.js", jsName], ...images].map(([from, to]) => [from, `assets/${to}`]),
  ),
};
await emit("build.json", JSON.stringify(manifest, null, 2) + "\n");

for (const [rel, size] of written) console.log(`  dist/${rel}  ${size} B`);
console.log(`built version ${version}`);
