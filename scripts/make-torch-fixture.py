#!/usr/bin/env python3
"""Writes test/model/fixtures/torch-tiny.pth: an ECG-JEPA encoder checkpoint for the TINY preset in
the byte format torch.save (>= 1.6, default pickle protocol 2) writes, made with the Python standard
library only (no torch here, nor in CI).

  python3 scripts/make-torch-fixture.py [OUT]      # default test/model/fixtures/torch-tiny.pth
  python3 scripts/make-torch-fixture.py --preset base /tmp/base.pth   # full size (341 MB), not committed

What makes it faithful to torch.save:
- data.pkl is pickled by the real `pickle` module at protocol 2 from objects that reduce the way
  torch's do: fake `torch` / `torch._utils` modules are put into sys.modules, so the pickle names
  the same globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage, collections.OrderedDict);
  a Pickler.persistent_id returns ('storage', <storage class>, key, 'cpu', numel) for storages, as
  torch's does, and each tensor reduces to _rebuild_tensor_v2(storage, offset, size, stride,
  False, OrderedDict()). The state_dict is an OrderedDict carrying a `_metadata` attribute, in the
  registration order of the official MaskTransformer (pos_embed first; in a Block norm1, norm2,
  mlp, attn). The file is {'encoder': state_dict, 'epoch': 99}, as the released checkpoints.
- The zip is laid out as PyTorchStreamWriter (miniz with MZ_ZIP_FLAG_WRITE_ZIP64) lays it out:
  entries STORED under one top folder, each local header padded with an 'FB' extra field so the
  data starts on a 64-byte boundary (the central directory has no such field), `byteorder` =
  "little", `version` = "3\\n", `.data/serialization_id`, and a ZIP64 end-of-central-directory
  record and locator before the ordinary one.

Test-only departures, so one small file exercises more of the reader: `norm.weight` is stored as a
HalfStorage and `norm.bias` as a DoubleStorage (the released files are all float32), and
`encoder_blocks.blocks.1.attn.proj.weight` is a transposed view at offset 40 into the storage that
also holds `encoder_blocks.blocks.1.attn.proj.bias` (offset 0).

Values: element i (row-major, logical) of tensor `name` is ((7*i + h(name)) % 997 - 498) / 4096
with h = the name's characters folded by h = (31*h + ord(c)) % 1000003; exact in float16 and
float32. `pos_embed` is the official 2-D sin-cos table (float64, stored as float32).
test/model/torch-pth.test.ts recomputes the same values.
"""
import collections
import io
import math
import os
import pickle
import struct
import sys
import types
import zlib

# --- the presets (model/config.ts): dim, depth, MLP hidden, patch size, leads, patches ---------
PRESETS = {'tiny': (32, 2, 128, 50, 3, 10), 'base': (768, 12, 3072, 50, 8, 50)}
DIM, DEPTH, MLP, PATCH, LEADS, PATCHES = PRESETS['tiny']


def name_hash(name):
    h = 0
    for c in name:
        h = (h * 31 + ord(c)) % 1000003
    return h


def value(name, i):
    return ((7 * i + name_hash(name)) % 997 - 498) / 4096


def values(name, n):
    """value(name, i) for i < n: periodic in i (period 997), so one period repeated."""
    h = name_hash(name)
    period = [((7 * i + h) % 997 - 498) / 4096 for i in range(min(n, 997))]
    return (period * (n // 997 + 1))[:n]


def sincos2d(dim, leads, patches):
    d = dim // 4
    omega = [1 / 10000 ** (i / d) for i in range(d)]
    rows = []
    for l in range(leads):
        for t in range(patches):
            rows.append([math.sin(t * w) for w in omega] + [math.cos(t * w) for w in omega]
                        + [math.sin(l * w) for w in omega] + [math.cos(l * w) for w in omega])
    return [v for r in rows for v in r]


def state_dict_specs():
    """(name, shape) in MaskTransformer.state_dict() order."""
    out = [('pos_embed', (LEADS * PATCHES, DIM))]
    for b in range(DEPTH):
        p = f'encoder_blocks.blocks.{b}'
        out += [(f'{p}.norm1.weight', (DIM,)), (f'{p}.norm1.bias', (DIM,)),
                (f'{p}.norm2.weight', (DIM,)), (f'{p}.norm2.bias', (DIM,)),
                (f'{p}.mlp.fc1.weight', (MLP, DIM)), (f'{p}.mlp.fc1.bias', (MLP,)),
                (f'{p}.mlp.fc2.weight', (DIM, MLP)), (f'{p}.mlp.fc2.bias', (DIM,)),
                (f'{p}.attn.qkv.weight', (3 * DIM, DIM)), (f'{p}.attn.proj.weight', (DIM, DIM)),
                (f'{p}.attn.proj.bias', (DIM,))]
    out += [('norm.weight', (DIM,)), ('norm.bias', (DIM,)), ('W_P.weight', (DIM, PATCH)), ('W_P.bias', (DIM,))]
    return out


# --- fake torch: only what pickle needs to name the same globals --------------------------------
torch = types.ModuleType('torch')
torch_utils = types.ModuleType('torch._utils')
torch._utils = torch_utils


def _storage_class(name, fmt):
    cls = type(name, (), {'fmt': fmt})
    cls.__module__ = 'torch'
    setattr(torch, name, cls)
    return cls


FloatStorage = _storage_class('FloatStorage', '<f')
HalfStorage = _storage_class('HalfStorage', '<e')
DoubleStorage = _storage_class('DoubleStorage', '<d')


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    raise RuntimeError('fixture writer only')


_rebuild_tensor_v2.__module__ = 'torch._utils'
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules['torch'] = torch
sys.modules['torch._utils'] = torch_utils


class Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.values = key, cls, [0.0] * numel

    def data(self):
        return struct.pack(f'<{len(self.values)}{self.cls.fmt[1]}', *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ('storage', obj.cls, obj.key, 'cpu', len(obj.values))
        return None


def contiguous_stride(size):
    stride, s = [], 1
    for d in reversed(size):
        stride.insert(0, s)
        s *= d
    return tuple(stride)


def build(specs):
    """The tensors of `specs` (built in that order) and their storages, in creation order."""
    storages = []

    def new_storage(cls, numel):
        s = Storage(str(len(storages)), cls, numel)
        storages.append(s)
        return s

    sd = {}
    shared_name = 'encoder_blocks.blocks.1.attn.proj'
    shared = None
    for name, size in specs:
        n = math.prod(size)
        if name == f'{shared_name}.bias':
            shared = new_storage(FloatStorage, 40 + DIM * DIM)
            t = Tensor(shared, 0, size, (1,))
            shared.values[:n] = values(name, n)
        elif name == f'{shared_name}.weight':
            # A transposed view: element [r, c] at storage offset 40 + r + c·DIM.
            t = Tensor(shared, 40, size, (1, DIM))
            for r in range(DIM):
                for c in range(DIM):
                    shared.values[40 + r + c * DIM] = value(name, r * DIM + c)
        else:
            cls = HalfStorage if name == 'norm.weight' else DoubleStorage if name == 'norm.bias' else FloatStorage
            s = new_storage(cls, n)
            s.values = sincos2d(DIM, LEADS, PATCHES) if name == 'pos_embed' else values(name, n)
            t = Tensor(s, 0, size, contiguous_stride(size))
        sd[name] = t
    return sd, storages


def metadata():
    m = collections.OrderedDict()
    names = ['', 'encoder_blocks', 'encoder_blocks.blocks']
    for b in range(DEPTH):
        p = f'encoder_blocks.blocks.{b}'
        names += [p, f'{p}.norm1', f'{p}.drop_path', f'{p}.norm2', f'{p}.mlp', f'{p}.mlp.fc1', f'{p}.mlp.act',
                  f'{p}.mlp.fc2', f'{p}.mlp.drop', f'{p}.attn', f'{p}.attn.qkv', f'{p}.attn.attn_drop',
                  f'{p}.attn.proj', f'{p}.attn.proj_drop']
    names += ['norm', 'W_P']
    for n in names:
        m[n] = {'version': 1}
    return m


def zip_stored(entries):
    """A zip as PyTorchStreamWriter writes it: STORED, data 64-byte aligned via an 'FB' local extra
    field, ZIP64 end records always (MZ_ZIP_FLAG_WRITE_ZIP64)."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        start = len(out) + 30 + len(nb) + 4
        pad = (64 - start % 64) % 64
        extra = b'FB' + struct.pack('<H', pad) + b'Z' * pad
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        out += struct.pack('<IHHHHHIIIHH', 0x04034B50, 0, 0, 0, 0, 0x21, crc, len(data), len(data), len(nb), len(extra))
        out += nb + extra
        assert len(out) % 64 == 0
        out += data
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014B50, 0x031E, 0, 0, 0, 0, 0x21, crc, len(data), len(data),
                               len(nb), 0, 0, 0, 0, 0o100644 << 16, offset)
        central += nb
    cd_ofs, cd_size, n = len(out), len(central), len(entries)
    out += central
    z64 = len(out)
    out += struct.pack('<IQHHIIQQQQ', 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, cd_size, cd_ofs)
    out += struct.pack('<IIQI', 0x07064B50, 0, z64, 1)
    out += struct.pack('<IHHHHIIH', 0x06054B50, 0, 0, n, n, cd_size, cd_ofs, 0)
    return bytes(out)


def main():
    global DIM, DEPTH, MLP, PATCH, LEADS, PATCHES
    args = sys.argv[1:]
    preset = 'tiny'
    if args[:1] == ['--preset']:
        preset, args = args[1], args[2:]
    DIM, DEPTH, MLP, PATCH, LEADS, PATCHES = PRESETS[preset]
    out = args[0] if args else os.path.relpath(os.path.join(os.path.dirname(__file__), '..', 'test', 'model', 'fixtures', 'torch-tiny.pth'))
    archive = os.path.splitext(os.path.basename(out))[0]  # torch.save names the top folder after the file's stem
    # The shared storage's owner (proj.bias) is built first; the dict keeps the official order.
    specs = state_dict_specs()
    names = [n for n, _ in specs]
    w, b = names.index('encoder_blocks.blocks.1.attn.proj.weight'), names.index('encoder_blocks.blocks.1.attn.proj.bias')
    specs[w], specs[b] = specs[b], specs[w]
    sd, storages = build(specs)
    ordered = collections.OrderedDict((n, sd[n]) for n in names)
    ordered._metadata = metadata()
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump({'encoder': ordered, 'epoch': 99})
    entries = [(f'{archive}/data.pkl', buf.getvalue()), (f'{archive}/byteorder', b'little')]
    entries += [(f'{archive}/data/{s.key}', s.data()) for s in storages]
    entries += [(f'{archive}/version', b'3\n'), (f'{archive}/.data/serialization_id', b'0123456789012345678901234567890123456789')]
    data = zip_stored(entries)
    with open(out, 'wb') as f:
        f.write(data)
    print(f'{out}: {len(data)} bytes, {len(sd)} tensors, {len(storages)} storages')


if __name__ == '__main__':
    main()
