// Checks the build: hashed names, version embedding, determinism.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));

function build(version) {
  const out = mkdtempSync(path.join(tmpdir(), "restaurant-build-"));
  const env = { ...process.env, BUILD_OUT: out };
  if (version === undefined) delete env.BUILD_VERSION;
  else env.BUILD_VERSION = version;
  execFileSync(process.execPath, [path.join(root, "build.mjs")], { env, stdio: "pipe" });
  return out;
}

function tree(dir) {
  const files = {};
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(r);
      else files[r] = createHash("sha256").update(readFileSync(path.join(dir, r))).digest("hex");
    }
  };
  walk("");
  return files;
}

test("assets are named by the SHA-256 of their content", () => {
  const out = build();
  try {
    const files = tree(out);
    const assets = Object.keys(files).filter((f) => f.startsWith("assets/"));
    assert.ok(assets.some((f) => /^assets\/index-[0-9a-f]{8}\.js$/.test(f)), "a hashed JS file");
    assert.ok(assets.some((f) => /^assets\/index-[0-9a-f]{8}\.css$/.test(f)), "a hashed CSS file");
    for (const f of assets) {
      const m = f.match(/-([0-9a-f]{8})\.[a-z]+$/);
      assert.ok(m, `${f} has a hash`);
      assert.equal(m[1], files[f].slice(0, 8), `${f} is named after its content`);
    }
    const html = readFileSync(path.join(out, "index.html"), "utf8");
    const manifest = JSON.parse(readFileSync(path.join(out, "build.json"), "utf8"));
    for (const name of ["index.css", "index.js", "logo.svg", "favicon.png"]) {
      assert.ok(html.includes(manifest.assets[name]), `index.html refers to ${manifest.assets[name]}`);
    }
    const css = readFileSync(path.join(out, manifest.assets["index.css"]), "utf8");
    assert.ok(css.includes(`url(${path.posix.basename(manifest.assets["plate.svg"])})`), "the CSS refers to the hashed image");
    assert.ok(!html.includes("%BUILD_VERSION%") && !html.includes('"style.css"') && !html.includes('"app.js"'));
    assert.match(html, /<meta name="version" content="dev">/);
  } finally {
    rmSync(out, { recursive: true });
  }
});

test("the same sources and version build the same bytes", () => {
  const a = build("1.0.0"), b = build("1.0.0"), c = build("2.0.0");
  try {
    assert.deepEqual(tree(a), tree(b));
    const ta = tree(a), tc = tree(c);
    assert.notDeepEqual(Object.keys(ta).sort(), Object.keys(tc).sort(), "a new version gives a new JS name");
    assert.match(readFileSync(path.join(c, "index.html"), "utf8"), /content="2\.0\.0"/);
    const manifest = JSON.parse(readFileSync(path.join(c, "build.json"), "utf8"));
    assert.equal(manifest.version, "2.0.0");
    assert.match(readFileSync(path.join(c, manifest.assets["index.js"]), "utf8"), /const BUILD_VERSION = "2\.0\.0";/);
  } finally {
    for (const d of [a, b, c]) rmSync(d, { recursive: true });
  }
});

test("an unsafe version is refused", () => {
  assert.throws(() => build('"><script>'), /BUILD_VERSION/);
});
