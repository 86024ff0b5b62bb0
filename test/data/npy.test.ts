// .npy reader/writer round trips, hand-built headers (v1, v2, Fortran order, big-endian), CSV signals.
import { assert } from '../helpers.js';
import { npyHeaderBytes, parseNpy, parseNpyHeader, parseSignalCsv, writeNpy } from '../../train/data/npy.js';

/** A .npy file with a hand-written header dict, as numpy lays it out (no padding rules enforced). */
function handNpy(version: 1 | 2, dict: string, data: Uint8Array): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  const text = dict + '\n';
  const out = new Uint8Array(pre + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0], 0);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, text.length, true);
  else dv.setUint32(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[pre + i] = text.charCodeAt(i);
  out.set(data, pre + text.length);
  return out;
}

describe('data: .npy and CSV signals', () => {
  it('round-trips <f4, <f8, <i2 arrays of several shapes', () => {
    const f4 = Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => i * 0.5 - 3);
    const a = parseNpy(writeNpy(f4, [2, 3, 5]));
    assert(a.dtype === '<f4' && a.shape.join() === '2,3,5' && a.data instanceof Float32Array && a.data.every((v, i) => v === f4[i]), 'f4');
    const f8 = Float64Array.from([Math.PI, -1e300, 0]);
    const b = parseNpy(writeNpy(f8, [3]));
    assert(b.dtype === '<f8' && b.shape.join() === '3' && b.data.every((v, i) => v === f8[i]), 'f8');
    const i2 = Int16Array.from([-32768, 0, 32767, 5]);
    const c = parseNpy(writeNpy(i2, [2, 2]));
    assert(c.dtype === '<i2' && c.data instanceof Int16Array && c.data.every((v, i) => v === i2[i]), 'i2');
    const scalar = parseNpy(writeNpy(new Float32Array([7]), []));
    assert(scalar.shape.length === 0 && scalar.data[0] === 7, 'scalar');
    const h = parseNpyHeader(npyHeaderBytes('<f4', [4]));
    assert(h.dataOffset % 64 === 0 && h.shape.join() === '4', `header aligned to 64: ${h.dataOffset}`);
  });

  it('reads hand-built v1 / v2 headers, Fortran order and big-endian data', () => {
    const le = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
    const c = parseNpy(handNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", le));
    assert(c.shape.join() === '2,3' && [...c.data].join() === '1,2,3,4,5,6', 'v1 C order');
    // The same bytes in Fortran order are the columns: element (r, c) = data[c·2 + r].
    const f = parseNpy(handNpy(2, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", le));
    assert([...f.data].join() === '1,3,5,2,4,6', `v2 Fortran → C: ${[...f.data]}`);
    const be = new Uint8Array(4);
    new DataView(be.buffer).setInt16(0, -2, false);
    new DataView(be.buffer).setInt16(2, 300, false);
    const b = parseNpy(handNpy(1, "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }", be));
    assert(b.dtype === '<i2' && b.data[0] === -2 && b.data[1] === 300, 'big-endian i2');
    let msg = '';
    try {
      parseNpy(handNpy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)));
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes('unsupported dtype'), `complex rejected: ${msg}`);
    try {
      parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
      msg = '';
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes('magic'), 'bad magic rejected');
  });

  it('reads CSV signals with and without header and time column', () => {
    const withHeader = parseSignalCsv('time,I,II,AVR\n0,10,20,-15\n0.002,11,,x\n', 0.001);
    assert(withHeader.leadNames.join() === 'I,II,aVR', `names ${withHeader.leadNames}`);
    assert(Math.abs(withHeader.signals[0][1] - 0.011) < 1e-9 && Number.isNaN(withHeader.signals[1][1]) && Number.isNaN(withHeader.signals[2][1]), 'values, blanks → NaN');
    const bare = parseSignalCsv('1;2\n3;4\n');
    assert(bare.leadNames.join() === 'lead0,lead1' && [...bare.signals[1]].join() === '2,4', `headerless, ';' delimiter: ${JSON.stringify(bare)}`);
  });
});
