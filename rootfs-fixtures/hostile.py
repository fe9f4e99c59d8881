#!/usr/bin/env python3
"""Generates hostile and malformed OCI images for kiln's tests.

usage: hostile.py OUTDIR [--outside PATH] [--archive] [--list] [CASE ...]

Writes one OCI layout directory per case into OUTDIR (all cases unless some
are named). Each is a real image (manifest, config, correct diff_ids) unless
the case is about breaking exactly that; the hostility sits in the layer.
With --archive, OUTDIR/CASE.tar (the layout packed as an oci-archive) is
written too. --outside names a directory outside the extraction target (the
test's scratch dir): cases aim absolute paths and link targets at it, expecting
a `sentinel/` directory and a `decoy-passwd` file there. --list prints the
case names with what each one does.

Python standard library only, deterministic output.
"""

import hashlib
import io
import json
import os
import platform
import sys
import tarfile
import zlib

MiB = 1 << 20
GiB = 1 << 30
BLOCK = 512

LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


# ---------------------------------------------------------------- tar entries


def _info(name, kind, mode, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_000_000_000
    ti.uname = ti.gname = ""
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def F(name, data=b"", mode=0o644):
    """A regular file."""
    if isinstance(data, str):
        data = data.encode()
    return (_info(name, tarfile.REGTYPE, mode, size=len(data)), data)


def D(name, mode=0o755):
    return (_info(name, tarfile.DIRTYPE, mode), None)


def L(name, target):
    """A symbolic link."""
    return (_info(name, tarfile.SYMTYPE, 0o777, linkname=target), None)


def H(name, target):
    """A hard link."""
    return (_info(name, tarfile.LNKTYPE, 0o644, linkname=target), None)


def C(name, major, minor, mode=0o666):
    """A character device."""
    return (_info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor), None)


def P(name, mode=0o644):
    """A FIFO."""
    return (_info(name, tarfile.FIFOTYPE, mode), None)


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _octal(n, width):
    return ("%0*o" % (width - 1, n)).encode() + b"\0"


def raw_header(name, typeflag, size, extra=None, gnu=False):
    """A tar header built by hand, for what tarfile will not write."""
    h = bytearray(BLOCK)

    def put(off, data):
        h[off : off + len(data)] = data

    put(0, name.encode()[:100])
    put(100, _octal(0o644, 8))
    put(108, _octal(0, 8))
    put(116, _octal(0, 8))
    put(124, _octal(size, 12))
    put(136, _octal(1_000_000_000, 12))
    put(156, typeflag)
    put(257, b"ustar  \0" if gnu else b"ustar\x0000")
    for off, data in (extra or {}).items():
        put(off, data)
    put(148, b" " * 8)
    put(148, ("%06o" % sum(h)).encode() + b"\0 ")
    return bytes(h)


def pad(n):
    return bytes(-n % BLOCK)


def end_of_archive():
    return bytes(2 * BLOCK)


def zeros(n, chunk=4 * MiB):
    while n > 0:
        k = min(n, chunk)
        yield bytes(k)
        n -= k


def big_file_stream(name, size):
    """One regular file of `size` zero bytes, streamed (a decompression bomb)."""
    ti = _info(name, tarfile.REGTYPE, 0o644, size=size)
    yield ti.tobuf(tarfile.GNU_FORMAT)
    yield from zeros(size)
    yield pad(size)
    yield end_of_archive()


def sparse_stream(count, real_size):
    """GNU sparse files that expand to `real_size` zero bytes each from one
    stored block, then a plain file that must never be reached."""
    for i in range(count):
        sparse = _octal(real_size - BLOCK, 12) + _octal(BLOCK, 12)
        yield raw_header(
            f"sparse{i}",
            b"S",
            BLOCK,
            {386: sparse, 483: _octal(real_size, 12)},
            gnu=True,
        )
        yield b"x" * BLOCK
    yield tar_bytes([F("after-the-bomb", "unreachable")], tarfile.GNU_FORMAT)


def pax_bomb_stream(size):
    """A PAX extended header of `size` bytes ahead of an ordinary file: a
    reader that buffers extension headers whole runs out of memory."""
    yield raw_header("PaxHeaders/bomb", b"x", size)
    yield from zeros(size)
    yield pad(size)
    yield tar_bytes([F("bomb", "after the header")], tarfile.GNU_FORMAT)


# ---------------------------------------------------------------- the cases
#
# Each case returns a dict: layers (a list of entry lists or chunk
# iterables), and optionally media/tweak keys handled in write_case().

CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


@case
def dotdot(o):
    """an entry a/b/../../../sentinel/pwned: refused, names the entry"""
    return {"layers": [[F("ok", "fine"), F("a/b/../../../sentinel/pwned", "escaped")]]}


@case
def absolute(o):
    """an entry with an absolute path into the outside dir: lands inside DIR"""
    return {"layers": [[F(f"{o}/sentinel/pwned", "inside")]]}


@case
def symlink_root(o):
    """symlink to / then a file written through it: lands inside DIR"""
    return {"layers": [[L("root", "/"), F(f"root{o}/sentinel/pwned", "inside")]]}


@case
def symlink_dotdot(o):
    """symlink to ../../.. (deep) then a file written through it: inside DIR"""
    up = "/".join([".."] * 24)
    return {"layers": [[L("up", up), F(f"up{o}/sentinel/pwned", "inside")]]}


@case
def hardlink_abs(o):
    """hard link to the outside decoy by absolute path: no such file inside"""
    return {"layers": [[H("passwd", f"{o}/decoy-passwd")]]}


@case
def hardlink_abs_inside(o):
    """a file at the decoy's path inside the layer, then a hard link to that
    absolute path: links the inside copy"""
    return {
        "layers": [[F(f"{o}/decoy-passwd", "inner copy"), H("passwd", f"{o}/decoy-passwd")]]
    }


@case
def hardlink_dotdot(o):
    """hard link whose target climbs out with ..: refused"""
    return {"layers": [[F("ok", "fine"), H("passwd", "../decoy-passwd")]]}


@case
def symlink_then_file(o):
    """symlinks to the decoy (absolute and relative), then regular files of
    the same names: the files replace the links, nothing is written through"""
    up = "/".join([".."] * 24)
    return {
        "layers": [
            [
                L("abs", f"{o}/decoy-passwd"),
                L("rel", f"{up}{o}/decoy-passwd"),
                F("abs", "replaced abs"),
                F("rel", "replaced rel"),
            ]
        ]
    }


@case
def symlink_then_hardlink(o):
    """a symlink to the decoy, then a hard link to the symlink: links the
    symlink itself, never the host file"""
    return {"layers": [[L("link", f"{o}/decoy-passwd"), H("hard", "link")]]}


@case
def symlinkdir_then_hardlink(o):
    """a symlink to the outside dir, then a hard link through it: resolved
    inside DIR, where the decoy does not exist"""
    return {"layers": [[L("out", o), H("hard", "out/decoy-passwd")]]}


@case
def dir_to_symlink(o):
    """a directory replaced mid-archive by a symlink to the sentinel's
    absolute path (which the layer also creates), then a file inside it:
    lands inside DIR"""
    return {
        "layers": [
            [
                D("d"),
                F("d/a", "first"),
                D(f"{o}/sentinel"),
                L("d", f"{o}/sentinel"),
                F("d/pwned", "inside"),
            ]
        ]
    }


@case
def dangling_symlink_parent(o):
    """a symlink to an absolute path missing inside DIR, then a file under it:
    refused (the container could not create it either), nothing outside"""
    return {"layers": [[L("d", f"{o}/sentinel"), F("d/pwned", "escaped")]]}


@case
def gzip_bomb(o):
    """one file of 1 GiB of zeros, about 1 MiB compressed"""
    return {"layers": [big_file_stream("zeros", GiB)]}


@case
def size_bomb(o):
    """40 files of 1 MiB each: every one small, 40 MiB together"""
    return {"layers": [[F(f"f{i:02}", bytes(MiB)) for i in range(40)]]}


@case
def sparse_bomb(o):
    """8 GNU sparse files of 4 MiB each, 512 bytes stored each"""
    return {"layers": [sparse_stream(8, 4 * MiB)]}


@case
def pax_bomb(o):
    """a 40 MiB PAX extended header"""
    return {"layers": [pax_bomb_stream(40 * MiB)]}


@case
def entry_bomb(o):
    """20,000 empty files"""
    return {"layers": [[F(f"d{i // 1000}/f{i}") for i in range(20000)]]}


@case
def whiteout_dotdot(o):
    """a whiteout ../.wh.sentinel: refused"""
    return {"layers": [[F("ok", "fine"), F("../.wh.sentinel")]]}


@case
def whiteout_dotdot_name(o):
    """a whiteout naming '..' (.wh...): refused, never the parent of DIR"""
    return {"layers": [[F("sub/keep", "k"), F(".wh...")]]}


@case
def whiteout_dot_name(o):
    """a whiteout naming '.' (sub/.wh..): refused"""
    return {"layers": [[F("sub/keep", "k"), F("sub/.wh..")]]}


@case
def whiteout_via_symlink(o):
    """whiteouts under symlinks to the outside dir (absolute and ../..):
    resolved inside DIR, where there is nothing to delete"""
    up = "/".join([".."] * 24)
    return {
        "layers": [
            [
                L("abs", o),
                L("rel", f"{up}{o}"),
                F("abs/sentinel/.wh.keep"),
                F("abs/.wh.decoy-passwd"),
                F(f"rel{o}/.wh.sentinel"),
                F("done", "extraction finished"),
            ]
        ]
    }


@case
def device(o):
    """a character device (1:3) and a FIFO: devices need root"""
    return {"layers": [[D("dev"), C("dev/null", 1, 3), P("dev/fifo"), F("after", "x")]]}


@case
def whiteout_two_layers(o):
    """layer 2 whites out etc/a from layer 1 (and a dir, and a missing name)"""
    return {
        "layers": [
            [F("etc/a", "a"), F("etc/b", "b"), F("gone/x", "x"), F("keep", "k")],
            [F("etc/.wh.a"), F(".wh.gone"), F(".wh.never-existed"), F("etc/c", "c")],
        ]
    }


@case
def opaque(o):
    """layer 2 makes d opaque, with same-layer entries before and after the
    marker: only layer 2's entries remain under d"""
    return {
        "layers": [
            [F("d/old", "1"), F("d/sub/old", "1"), F("d/sub2/old", "1"), F("other", "1")],
            [
                F("d/before", "2"),
                F("d/sub/new", "2"),
                F("d/.wh..wh..opq"),
                F("d/after", "2"),
                F("d/sub3/new", "2"),
            ],
        ]
    }


@case
def hardlinks(o):
    """hard links inside the layer, relative and absolute targets"""
    return {
        "layers": [
            [F("a", "shared", 0o600), H("b", "a"), H("dir/c", "/a"), H("dir/d", "./dir/c")]
        ]
    }


@case
def readonly_dir(o):
    """a 0555 directory with children, written before its mode is set; a
    second layer adds to it and whites out one of them"""
    return {
        "layers": [
            [D("ro", 0o555), F("ro/f", "f"), D("ro/sub", 0o555), F("ro/sub/g", "g")],
            [F("ro/later", "l"), F("ro/sub/later", "l"), F("ro/.wh.f")],
        ]
    }


# Malformed images: the layer is ordinary, the layout around it is not.


def plain(o):
    return [[F("hello", "world")]]


@case
def truncated(o):
    """the layer blob cut in half (dir), the archive cut inside it (.tar)"""
    return {"layers": plain(o), "tweak": "truncate"}


@case
def truncated_layer(o):
    """a layer whose gzip stream is cut short; digest and size match the cut blob"""
    return {"layers": plain(o), "tweak": "truncate_gzip"}


@case
def wrong_digest(o):
    """the layer blob's content does not hash to its name"""
    return {"layers": plain(o), "tweak": "flip_layer"}


@case
def bad_json_index(o):
    """index.json is not JSON"""
    return {"layers": plain(o), "tweak": "bad_index"}


@case
def bad_json_manifest(o):
    """the manifest blob is not JSON (its digest is right)"""
    return {"layers": plain(o), "tweak": "bad_manifest"}


@case
def bad_json_config(o):
    """the config blob is not JSON (its digest is right)"""
    return {"layers": plain(o), "tweak": "bad_config"}


@case
def unknown_manifest_type(o):
    """the index lists the manifest with an unknown media type"""
    return {"layers": plain(o), "manifest_media": "application/vnd.example.unknown+json"}


@case
def unknown_layer_type(o):
    """the manifest lists a layer with an unknown media type"""
    return {"layers": plain(o), "layer_media": "application/vnd.example.layer.v1+zstd"}


@case
def missing_blob(o):
    """the layer blob is absent"""
    return {"layers": plain(o), "tweak": "drop_layer"}


@case
def missing_config(o):
    """the manifest points at a config blob that is absent"""
    return {"layers": plain(o), "tweak": "drop_config"}


@case
def diffid_mismatch(o):
    """the layer is intact but the config's diff_id belongs to other content"""
    return {"layers": plain(o), "tweak": "wrong_diffid"}


@case
def diffid_mismatch_tar(o):
    """an uncompressed layer whose diff_id is not its digest"""
    return {"layers": plain(o), "tweak": "wrong_diffid", "compress": False}


# ---------------------------------------------------------------- writing


def write_blob(blobdir, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobdir, hexd), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexd, "size": len(data)}


def write_layer(blobdir, layer, compress=True):
    """Gzips a layer (entries or chunks) into a blob; returns its descriptor
    fields and diff_id, hashing as it streams."""
    chunks = [tar_bytes(layer)] if isinstance(layer, list) else layer
    diff, dig, size = hashlib.sha256(), hashlib.sha256(), 0
    comp = zlib.compressobj(9, zlib.DEFLATED, 31) if compress else None
    tmp = os.path.join(blobdir, ".layer.tmp")
    with open(tmp, "wb") as f:

        def out(b):
            nonlocal size
            dig.update(b)
            f.write(b)
            size += len(b)

        for c in chunks:
            diff.update(c)
            out(comp.compress(c) if comp else c)
        if comp:
            out(comp.flush())
    os.rename(tmp, os.path.join(blobdir, dig.hexdigest()))
    return {"digest": "sha256:" + dig.hexdigest(), "size": size}, "sha256:" + diff.hexdigest()


def blob_path(blobdir, desc):
    return os.path.join(blobdir, desc["digest"].split(":", 1)[1])


def arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def write_case(out, name, spec):
    top = os.path.join(out, name)
    blobdir = os.path.join(top, "blobs", "sha256")
    os.makedirs(blobdir)
    tweak = spec.get("tweak")
    layers, diff_ids = [], []
    for layer in spec["layers"]:
        compress = spec.get("compress", True)
        desc, diff_id = write_layer(blobdir, layer, compress)
        desc["mediaType"] = spec.get("layer_media", LAYER_GZ if compress else LAYER_TAR)
        layers.append(desc)
        diff_ids.append(diff_id)
    if tweak == "truncate_gzip":
        p = blob_path(blobdir, layers[0])
        with open(p, "rb") as f:
            data = f.read()
        os.unlink(p)
        cut = write_blob(blobdir, data[: len(data) // 2])
        layers[0].update(cut)
    if tweak == "wrong_diffid":
        diff_ids[0] = "sha256:" + hashlib.sha256(b"other content").hexdigest()
    config = {
        "architecture": arch(),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"hostile.py {name}"} for _ in layers],
    }
    cfg_bytes = json.dumps(config, sort_keys=True).encode()
    if tweak == "bad_config":
        cfg_bytes = cfg_bytes[: len(cfg_bytes) // 2]
    cfg = write_blob(blobdir, cfg_bytes)
    cfg["mediaType"] = CONFIG
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": cfg,
        "layers": layers,
    }
    man_bytes = json.dumps(manifest, sort_keys=True).encode()
    if tweak == "bad_manifest":
        man_bytes = b'{"schemaVersion": 2, "config": ' + man_bytes
    man = write_blob(blobdir, man_bytes)
    man["mediaType"] = spec.get("manifest_media", MANIFEST)
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [man]}
    index_bytes = json.dumps(index, sort_keys=True).encode()
    if tweak == "bad_index":
        index_bytes = b"{manifests: [" + index_bytes
    with open(os.path.join(top, "index.json"), "wb") as f:
        f.write(index_bytes)
    with open(os.path.join(top, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    layer_blob = blob_path(blobdir, layers[0])
    if tweak == "flip_layer":
        with open(layer_blob, "r+b") as f:
            f.seek(20)
            b = f.read(1)
            f.seek(20)
            f.write(bytes([b[0] ^ 0xFF]))
    if tweak == "drop_layer":
        os.unlink(layer_blob)
    if tweak == "drop_config":
        os.unlink(blob_path(blobdir, cfg))
    return top


def write_archive(top, dest, truncate=False):
    """Packs a layout directory as an oci-archive (a plain tar of it)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for rel in ["oci-layout", "index.json", "blobs", "blobs/sha256"] + [
            "blobs/sha256/" + n for n in sorted(os.listdir(os.path.join(top, "blobs/sha256")))
        ]:
            ti = tf.gettarinfo(os.path.join(top, rel), rel)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 1_000_000_000, 0, 0, "", ""
            if ti.isfile():
                with open(os.path.join(top, rel), "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    if truncate:
        # Cut in the middle of the layer blob, not at a header boundary (which
        # a tar reader takes for a plain end of archive).
        layer = "blobs/sha256/" + _layer_hex(top)
        with tarfile.open(dest) as tf:
            m = tf.getmember(layer)
            cut = m.offset_data + m.size // 2
        with open(dest, "r+b") as f:
            f.truncate(cut)


def main(argv):
    args, outside, archive, names = list(argv), "/tmp/kiln-outside", False, []
    out = None
    while args:
        a = args.pop(0)
        if a == "--outside":
            outside = args.pop(0).rstrip("/")
        elif a == "--archive":
            archive = True
        elif a == "--list":
            for n, fn in CASES.items():
                print(f"{n:24} {fn.__doc__.split(chr(10))[0]}")
            return 0
        elif a.startswith("-"):
            sys.exit(f"hostile.py: unknown option {a}\n{__doc__}")
        elif out is None:
            out = a
        else:
            names.append(a)
    if out is None:
        sys.exit(__doc__)
    if not os.path.isabs(outside):
        sys.exit("hostile.py: --outside must be an absolute path")
    for n in names:
        if n not in CASES:
            sys.exit(f"hostile.py: no case {n!r} (see --list)")
    os.makedirs(out, exist_ok=True)
    for n in names or list(CASES):
        spec = CASES[n](outside)
        top = write_case(out, n, spec)
        if archive:
            write_archive(top, os.path.join(out, n + ".tar"), spec.get("tweak") == "truncate")
        if spec.get("tweak") == "truncate":
            p = blob_path(os.path.join(top, "blobs", "sha256"), {"digest": "sha256:" + _layer_hex(top)})
            with open(p, "r+b") as f:
                f.truncate(os.path.getsize(p) // 2)
    return 0


def _layer_hex(top):
    with open(os.path.join(top, "index.json"), "rb") as f:
        man = json.load(f)["manifests"][0]["digest"].split(":", 1)[1]
    with open(os.path.join(top, "blobs", "sha256", man), "rb") as f:
        return json.load(f)["layers"][0]["digest"].split(":", 1)[1]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
