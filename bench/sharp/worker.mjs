// The Node plugin's worker, written with sharp the way a competent sharp user would: the
// reference `scripts/bench-processing` measures `ximagepipeline process` against.
//
//   node worker.mjs --source-type gallery --out DIR [--jobs 2] [--effort ours] FILE...
//
// `--effort ours` sets libwebp's effort (method) per variant as ximagepipeline does (4 up to a
// megapixel, 2 above: src/pipeline/encode.rs), for a comparison at the same settings; without
// it sharp keeps its default effort, 4.
//
// Per file: auto-orient, one resize per variant (the spec's fit, never enlarging), lossy WebP
// at the source type's quality, blurhash 4×3 from a 32 px thumbnail. Variants run in parallel
// (Promise.all), `--jobs` files at a time; sharp keeps its own defaults (a competent user
// does not tune libvips threads). Prints one JSON line per file, like `ximagepipeline process`.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { encode } from 'blurhash';

// The spec's defaults (API.md section 4).
const VARIANTS = {
  xs: { width: 64, height: 64, fit: 'cover' },
  sm: { width: 256, height: 256, fit: 'cover' },
  md: { width: 640, fit: 'inside' },
  lg: { width: 1280, fit: 'inside' },
  xl: { width: 1920, fit: 'inside' },
  '2xl': { width: 2560, fit: 'inside' },
};
const SOURCE_TYPES = {
  avatar: { variants: ['xs', 'sm'], quality: 85 },
  member_photo: { variants: ['xs', 'sm', 'md'], quality: 85 },
  gallery: { variants: ['md', 'lg', 'xl'], quality: 80 },
  hero: { variants: ['lg', 'xl', '2xl'], quality: 80 },
  content: { variants: ['sm', 'md', 'lg'], quality: 80 },
};

function parseArgs(argv) {
  const args = { jobs: 2, effort: 'default', files: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--source-type') args.sourceType = argv[++i];
    else if (arg === '--out') args.out = argv[++i];
    else if (arg === '--jobs') args.jobs = Number(argv[++i]);
    else if (arg === '--effort') args.effort = argv[++i];
    else args.files.push(arg);
  }
  if (!SOURCE_TYPES[args.sourceType] || !args.out || args.files.length === 0) {
    throw new Error('usage: worker.mjs --source-type TYPE --out DIR [--jobs N] FILE...');
  }
  return args;
}

// ximagepipeline's libwebp effort for a picture of `pixels`.
const oursEffort = (pixels) => (pixels <= 1_000_000 ? 4 : 2);

// The pixels of a variant of an upright `w`×`h` image: the spec's fit, never enlarging.
function variantPixels(w, h, { width, height, fit }) {
  if (fit === 'cover' && height) {
    return Math.min(width, w) * Math.min(height, h);
  }
  const scale = Math.min(1, width / w, height ? height / h : Infinity);
  return Math.round(w * scale) * Math.round(h * scale);
}

async function processFile(file, type, out, effort) {
  const started = performance.now();
  const input = await readFile(file);
  const dir = join(out, basename(file));
  await mkdir(dir, { recursive: true });
  const upright = sharp(input, { failOn: 'none' }).rotate();
  let size;
  if (effort === 'ours') {
    const { width, height, orientation } = await sharp(input).metadata();
    size = (orientation ?? 1) >= 5 ? [height, width] : [width, height];
  }
  const variants = {};
  await Promise.all(
    type.variants.map(async (name) => {
      const { width, height, fit } = VARIANTS[name];
      const webp = { quality: type.quality };
      if (size) webp.effort = oursEffort(variantPixels(size[0], size[1], VARIANTS[name]));
      const { data, info } = await upright
        .clone()
        .resize({ width, height, fit, withoutEnlargement: true })
        .webp(webp)
        .toBuffer({ resolveWithObject: true });
      const path = join(dir, `${name}.webp`);
      await writeFile(path, data);
      variants[name] = { path, width: info.width, height: info.height, bytes: data.length };
    }),
  );
  const { data, info } = await upright
    .clone()
    .resize(32, 32, { fit: 'inside' })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const blurhash = encode(new Uint8ClampedArray(data), info.width, info.height, 4, 3);
  return { file, blurhash, variants, ms: Math.round(performance.now() - started) };
}

const args = parseArgs(process.argv.slice(2));
const type = SOURCE_TYPES[args.sourceType];
const queue = [...args.files];
let failed = false;
await Promise.all(
  Array.from({ length: args.jobs }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      try {
        console.log(JSON.stringify(await processFile(file, type, args.out, args.effort)));
      } catch (err) {
        failed = true;
        console.log(JSON.stringify({ file, error: String(err.message ?? err) }));
      }
    }
  }),
);
process.exitCode = failed ? 1 : 0;
