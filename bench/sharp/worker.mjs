// The Node plugin's worker, written with sharp the way a competent sharp user would: the
// reference `scripts/bench-processing` measures `ximagepipeline process` against.
//
//   node worker.mjs --source-type gallery --out DIR [--jobs 2] FILE...
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
  const args = { jobs: 2, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--source-type') args.sourceType = argv[++i];
    else if (arg === '--out') args.out = argv[++i];
    else if (arg === '--jobs') args.jobs = Number(argv[++i]);
    else args.files.push(arg);
  }
  if (!SOURCE_TYPES[args.sourceType] || !args.out || args.files.length === 0) {
    throw new Error('usage: worker.mjs --source-type TYPE --out DIR [--jobs N] FILE...');
  }
  return args;
}

async function processFile(file, type, out) {
  const started = performance.now();
  const input = await readFile(file);
  const dir = join(out, basename(file));
  await mkdir(dir, { recursive: true });
  const upright = sharp(input, { failOn: 'none' }).rotate();
  const variants = {};
  await Promise.all(
    type.variants.map(async (name) => {
      const { width, height, fit } = VARIANTS[name];
      const { data, info } = await upright
        .clone()
        .resize({ width, height, fit, withoutEnlargement: true })
        .webp({ quality: type.quality })
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
        console.log(JSON.stringify(await processFile(file, type, args.out)));
      } catch (err) {
        failed = true;
        console.log(JSON.stringify({ file, error: String(err.message ?? err) }));
      }
    }
  }),
);
process.exitCode = failed ? 1 : 0;
