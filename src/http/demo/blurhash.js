// A small blurhash decoder (https://blurha.sh), written for the ximagepipeline demo page.
// Exposes window.XipBlurhash = { decode, isValid, paint }.
"use strict";
(function () {
  const CHARS =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(str) {
    let value = 0;
    for (const c of str) {
      const digit = CHARS.indexOf(c);
      if (digit < 0) throw new Error("blurhash: invalid character " + c);
      value = value * 83 + digit;
    }
    return value;
  }

  const sRGBToLinear = (v) => {
    const x = v / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  };
  const linearToSRGB = (v) => {
    const x = Math.max(0, Math.min(1, v));
    return x <= 0.0031308
      ? Math.trunc(x * 12.92 * 255 + 0.5)
      : Math.trunc((1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255 + 0.5);
  };
  const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

  // Number of components (x, y) or null when the string is not a blurhash.
  function components(hash) {
    if (typeof hash !== "string" || hash.length < 6) return null;
    try {
      const flag = decode83(hash[0]);
      const nx = (flag % 9) + 1;
      const ny = Math.floor(flag / 9) + 1;
      return hash.length === 4 + 2 * nx * ny ? { nx, ny } : null;
    } catch (_) {
      return null;
    }
  }

  const isValid = (hash) => components(hash) !== null;

  // Decodes into RGBA pixels (Uint8ClampedArray of width*height*4).
  function decode(hash, width, height, punch = 1) {
    const size = components(hash);
    if (!size) throw new Error("blurhash: invalid string");
    const { nx, ny } = size;
    const maxAC = ((decode83(hash[1]) + 1) / 166) * punch;
    const colors = [];
    for (let i = 0; i < nx * ny; i++) {
      if (i === 0) {
        const dc = decode83(hash.substring(2, 6));
        colors.push([sRGBToLinear(dc >> 16), sRGBToLinear((dc >> 8) & 255), sRGBToLinear(dc & 255)]);
      } else {
        const ac = decode83(hash.substring(4 + i * 2, 6 + i * 2));
        const q = [Math.floor(ac / 361), Math.floor(ac / 19) % 19, ac % 19];
        colors.push(q.map((v) => signPow((v - 9) / 9, 2) * maxAC));
      }
    }
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          const by = Math.cos((Math.PI * y * j) / height);
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * by;
            const c = colors[i + j * nx];
            r += c[0] * basis;
            g += c[1] * basis;
            b += c[2] * basis;
          }
        }
        const p = 4 * (x + y * width);
        pixels[p] = linearToSRGB(r);
        pixels[p + 1] = linearToSRGB(g);
        pixels[p + 2] = linearToSRGB(b);
        pixels[p + 3] = 255;
      }
    }
    return pixels;
  }

  // Paints `hash` into `canvas` at a small size of the given aspect ratio (CSS scales it up).
  function paint(canvas, hash, ratio) {
    const r = ratio > 0 && isFinite(ratio) ? ratio : 1;
    const width = r >= 1 ? 32 : Math.max(4, Math.round(32 * r));
    const height = r >= 1 ? Math.max(4, Math.round(32 / r)) : 32;
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(width, height);
    image.data.set(decode(hash, width, height));
    ctx.putImageData(image, 0, 0);
    canvas.dataset.painted = "true";
    return canvas;
  }

  window.XipBlurhash = { decode, isValid, paint };
})();
