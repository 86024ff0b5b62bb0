import { asFloat32, decodeSafetensors, encodeSafetensors, f16BitsToF32, f32ToF16Bits, type StTensor } from '../../model/safetensors.js';
import { assert } from '../helpers.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

describe('model/safetensors', () => {
  it('f16 conversion: exact values, rounding to nearest even, subnormals, overflow', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [v, h] of cases) assert(f32ToF16Bits(v) === h, `${v} → 0x${f32ToF16Bits(v).toString(16)}, want 0x${h.toString(16)}`);
    assert(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))), 'NaN');
    for (let h = 0; h < 0x7c00; h += 37) assert(f32ToF16Bits(f16BitsToF32(h)) === h, `round trip 0x${h.toString(16)}`);
  });

  it('round trip F32, F16 and F64 with metadata; header layout as the format says', () => {
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const tensors = new Map<string, StTensor>([
      ['w', { dtype: 'F32', shape: [2, 3], data: a }],
      ['h', { dtype: 'F16', shape: [3], data: Float32Array.from([1, -2, 0.1]) }],
      ['s', { dtype: 'F32', shape: [], data: Float32Array.from([7]) }],
      ['e', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
      ['d', { dtype: 'F64', shape: [2], data: Float64Array.from([0.1, -1e-300]) }],
    ]);
    const bytes = encodeSafetensors(tensors, { step: '12' });
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const n = dv.getUint32(0, true);
    assert(dv.getUint32(4, true) === 0 && (8 + n) % 8 === 0, 'u64 LE length, data 8-byte aligned');
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    assert(JSON.stringify(header.w) === '{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}', JSON.stringify(header.w));
    assert(JSON.stringify(header.h.data_offsets) === '[24,30]' && header.__metadata__.step === '12', 'offsets, metadata');
    assert(bytes.length === 8 + n + 24 + 6 + 4 + 16, 'no holes');
    const back = decodeSafetensors(bytes);
    assert(back.metadata.step === '12', 'metadata back');
    const w = back.tensors.get('w')!;
    assert(w.dtype === 'F32' && JSON.stringify(w.shape) === '[2,3]' && w.data.every((v, i) => v === a[i]), 'w');
    const h = back.tensors.get('h')!;
    assert(h.dtype === 'F16' && h.data instanceof Uint16Array && JSON.stringify(Array.from(h.data)) === '[15360,49152,11878]', `h ${h.data}`);
    assert(Math.abs(asFloat32(h)[2] - 0.1) < 1e-4, 'f16 widened');
    assert(back.tensors.get('s')!.data[0] === 7 && back.tensors.get('e')!.data.length === 0, 'scalar and empty');
    const d = back.tensors.get('d')!;
    assert(d.dtype === 'F64' && d.data instanceof Float64Array && d.data[0] === 0.1 && d.data[1] === -1e-300, `f64 exact: ${d.data}`);
  });

  it('reads an unpadded header with tensors listed out of order (as other writers produce)', () => {
    const json = '{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const head = new TextEncoder().encode(json);
    const bytes = new Uint8Array(8 + head.length + 8);
    new DataView(bytes.buffer).setUint32(0, head.length, true);
    bytes.set(head, 8);
    new DataView(bytes.buffer).setFloat32(8 + head.length, 1.5, true);
    new DataView(bytes.buffer).setFloat32(8 + head.length + 4, -3, true);
    const t = decodeSafetensors(bytes).tensors;
    assert(t.get('a')!.data[0] === 1.5 && t.get('b')!.data[0] === -3, 'values');
  });

  it('truncated or malformed files fail with a clear message', () => {
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    assert(/truncated: tensor 'w' ends at byte 16 of the data, the file has 12/.test(errorOf(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'x'))), 'short data');
    assert(/truncated: header says \d+ bytes of JSON/.test(errorOf(() => decodeSafetensors(bytes.subarray(0, 20)))), 'short header');
    assert(/not even the 8-byte header length/.test(errorOf(() => decodeSafetensors(bytes.subarray(0, 5)))), 'tiny');
    const extra = new Uint8Array(bytes.length + 4);
    extra.set(bytes);
    assert(/4 unexpected bytes after the last tensor/.test(errorOf(() => decodeSafetensors(extra))), 'trailing bytes');
    const bad = bytes.slice();
    bad[9] = 0x7b; // corrupt the JSON
    assert(/header is not valid JSON/.test(errorOf(() => decodeSafetensors(bad))), 'bad JSON');
    assert(/unsupported dtype "I8"/.test(errorOf(() => encodeSafetensors({ q: { dtype: 'I8' as 'F32', shape: [1], data: new Float32Array(1) } }))), 'dtype');
    assert(/3 values for shape \[4\]/.test(errorOf(() => encodeSafetensors({ q: { dtype: 'F32', shape: [4], data: new Float32Array(3) } }))), 'size');
    // 8 bytes a value under an F16 header would make a file no reader can decode
    assert(/F16 data must be a Uint16Array of half bits or a Float32Array/.test(errorOf(() => encodeSafetensors({ q: { dtype: 'F16', shape: [2], data: new Float64Array(2) } }))), 'F16 from float64');
  });
});
