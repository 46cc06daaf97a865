#!/usr/bin/env python3
"""A second, independent verifier of a Lethe ledger.

Written only from ledger/FORMAT.md, the .proto files under proto/, README.md and public specs
(RFC 9162, C2SP signed-note, tlog-checkpoint and tlog-tiles, YAML 1.2), without reading
Lethe's C++ code: it shows that the document is enough to reach lethectl's verdict.
Section numbers (§) below are those of ledger/FORMAT.md.

    lethe_verify.py --dir DATA_DIR --public-key FILE [--accept-unauthenticated]
                    [--allow-unknown-fields] [--bundle EXPORT_DIR] [--proto-dir DIR]

Prints "OK" and a summary (exit 0), or "FAILED: <reason>" (exit 1); exit 2 on usage errors.
Needs Debian 12's python3-protobuf, python3-cryptography and python3-yaml, and protoc.
"""

import argparse
import atexit
import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Failed(Exception):
    """The verdict FAILED, with its reason."""


class UsageError(Exception):
    """Exit code 2."""


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


# --------------------------------------------------------------------------------------------
# Protobuf schema: generated from proto/ at run time.

pb = None  # module lethe.v1.ledger_pb2
mpb = None  # module lethe.v1.messages_pb2
DecodeError = None


def load_protos(proto_dir):
    global pb, mpb, DecodeError
    out = tempfile.mkdtemp(prefix="lethe-verify-")
    atexit.register(shutil.rmtree, out, True)
    files = ["lethe/v1/messages.proto", "lethe/v1/ledger.proto"]
    for f in files:
        if not os.path.isfile(os.path.join(proto_dir, f)):
            raise UsageError(f"--proto-dir {proto_dir}: no {f}")
    try:
        subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + out] + files,
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        raise UsageError(f"protoc failed: {e} {err.decode(errors='replace')}")
    sys.path.insert(0, out)
    from google.protobuf.message import DecodeError as de
    from lethe.v1 import ledger_pb2, messages_pb2
    pb, mpb, DecodeError = ledger_pb2, messages_pb2, de


def has_unknown_fields(msg):
    """True when msg, or a message inside it, holds a field proto/lethe/v1 does not define."""
    if len(msg.UnknownFields()):
        return True
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            values = value if fd.label == fd.LABEL_REPEATED else [value]
            if any(has_unknown_fields(v) for v in values):
                return True
    return False


# --------------------------------------------------------------------------------------------
# The trusted key: lethed's Ed25519 public key.

def load_public_key(path):
    """A `lethectl keys generate` .pub file (PEM public keys; the Ed25519 one is used), or a
    signed-note verifier key `name+hex(key id)+base64(0x01 || key)` (§4)."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise UsageError(f"--public-key: {e}")
    keys = []
    for m in re.finditer(rb"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", data, re.S):
        try:
            k = serialization.load_pem_public_key(m.group(0))
        except ValueError as e:
            raise UsageError(f"--public-key {path}: {e}")
        if isinstance(k, Ed25519PublicKey):
            keys.append(k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    if len(keys) == 1:
        return keys[0]
    if len(keys) > 1:
        raise UsageError(f"--public-key {path}: more than one Ed25519 public key")
    parts = data.strip().split(b"+", 2)  # the name holds no "+", the base64 may
    if len(parts) == 3:
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raw = b""
        if (len(raw) == 33 and raw[0] == 1 and
                parts[1].decode(errors="replace") == note_key_id(
                    parts[0].decode(errors="replace"), raw[1:]).hex()):
            return raw[1:]
    raise UsageError(f"--public-key {path}: no Ed25519 public key (PEM or verifier key)")


def ed25519_ok(public_key, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# §1: CRC-32C (Castagnoli, reflected 0x82F63B78, init and final XOR 0xFFFFFFFF).

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# --------------------------------------------------------------------------------------------
# §3: RFC 9162 Merkle tree.

def leaf_hash(payload):
    return sha256(b"\x00", payload)


def merkle_root(leaves):
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01", merkle_root(leaves[:k]), merkle_root(leaves[k:]))


# --------------------------------------------------------------------------------------------
# §4: checkpoints (C2SP tlog-checkpoint, a C2SP signed-note).

def valid_key_name(name):
    # Non-empty UTF-8 with no Unicode space and no '+' (C2SP signed-note).
    return bool(name) and "+" not in name and not any(c.isspace() or c in "\x85\xa0" for c in name)


def note_key_id(name, public_key):
    return sha256(name.encode(), b"\n\x01", public_key)[:4]


def parse_checkpoint(data, public_key, what):
    """Verifies a checkpoint note signed by public_key; returns (origin, size, root)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Failed(f"{what}: not UTF-8")
    split = text.find("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise Failed(f"{what}: not a signed note (no blank line, or no final newline)")
    body, sig_text = text[:split + 1], text[split + 2:]
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise Failed(f"{what}: fewer than three lines before the signatures")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not valid_key_name(origin):
        raise Failed(f"{what}: origin {origin!r} is not a valid key name")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        raise Failed(f"{what}: tree size {size_s!r} is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        root = b""
    if len(root) != 32:
        raise Failed(f"{what}: root is not base64 of 32 bytes")
    want_id = note_key_id(origin, public_key)
    verified = 0
    sig_lines = sig_text[:-1].split("\n") if sig_text else []
    if not sig_lines:
        raise Failed(f"{what}: no signature line")
    for line in sig_lines:
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if not m:
            raise Failed(f"{what}: malformed signature line {line!r}")
        try:
            sig = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            raise Failed(f"{what}: signature of {m.group(1)} is not base64")
        if len(sig) < 5:
            raise Failed(f"{what}: signature of {m.group(1)} is too short")
        if m.group(1) != origin or sig[:4] != want_id:
            continue  # another key's signature: not ours to check (signed-note)
        if len(sig) != 68 or not ed25519_ok(public_key, sig[4:], body.encode()):
            raise Failed(f"{what}: the signature of {origin} does not verify under the trusted key")
        verified += 1
    if not verified:
        raise Failed(f"{what}: not signed by the trusted key (name {origin}, key id "
                     f"{want_id.hex()})")
    return origin, int(size_s), root


# --------------------------------------------------------------------------------------------
# §9: the policy, its validity and its canonical hash.

class PolicyError(Exception):
    pass


# Lethe reads YAML 1.2 with a few departures (§9.1) that PyYAML (YAML 1.1) does not share:
# only LF and CRLF are line breaks (a lone CR, NEL, LS and PS are ordinary characters), any
# raw character is allowed (U+0000 too, which PyYAML uses as its end marker), and `\'`,
# `\N`, `\_` and surrogate escapes differ. The characters PyYAML would misread are swapped
# for private-use stand-ins before parsing and swapped back in every scalar.
_STANDINS = {"\x85": "\U0010F085", "\u2028": "\U0010F028", "\u2029": "\U0010F029",
             "\x00": "\U0010F000", "\r": "\U0010F00D"}
_RESTORE = str.maketrans({v: k for k, v in _STANDINS.items()})
# Bytes that are not UTF-8 are kept as U+DC80..U+DCFF (surrogateescape): content, but never
# valid text (§9.2). \N and \_ produce the single bytes 85 and A0 (§9.1).
_BAD_BYTE = {0x85: "\udc85", 0xA0: "\udca0"}


class _Scanner(yaml.scanner.Scanner):
    ESCAPE_REPLACEMENTS = dict(yaml.scanner.Scanner.ESCAPE_REPLACEMENTS,
                               **{"'": "'", "N": _BAD_BYTE[0x85], "_": _BAD_BYTE[0xA0]})

    def scan_flow_scalar_non_spaces(self, double, start_mark):
        # PyYAML's own method, with the escapes of §9.1.
        chunks = []
        while True:
            length = 0
            while self.peek(length) not in "'\"\\\0 \t\r\n\x85\u2028\u2029":
                length += 1
            if length:
                chunks.append(self.prefix(length))
                self.forward(length)
            ch = self.peek()
            if not double and ch == "'" and self.peek(1) == "'":
                chunks.append("'")
                self.forward(2)
            elif (double and ch == "'") or (not double and ch in "\"\\"):
                chunks.append(ch)
                self.forward()
            elif double and ch == "\\":
                self.forward()
                ch = self.peek()
                if ch in self.ESCAPE_REPLACEMENTS:
                    chunks.append(self.ESCAPE_REPLACEMENTS[ch])
                    self.forward()
                elif ch in self.ESCAPE_CODES:
                    length = self.ESCAPE_CODES[ch]
                    self.forward()
                    digits = self.prefix(length)
                    if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % length, digits):
                        raise yaml.scanner.ScannerError(
                            "while scanning a double-quoted scalar", start_mark,
                            f"expected {length} hexadecimal digits", self.get_mark())
                    code = int(digits, 16)
                    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                        raise yaml.scanner.ScannerError(
                            "while scanning a double-quoted scalar", start_mark,
                            f"escape of a surrogate or of U+{code:X}", self.get_mark())
                    chunks.append(chr(code))
                    self.forward(length)
                elif ch in "\r\n":  # a CR here is always CRLF (lone CRs were swapped)
                    self.scan_line_break()
                    chunks.extend(self.scan_flow_scalar_breaks(double, start_mark))
                else:
                    raise yaml.scanner.ScannerError(
                        "while scanning a double-quoted scalar", start_mark,
                        f"unknown escape character {ch!r}", self.get_mark())
            else:
                return chunks


class _Reader(yaml.reader.Reader):
    def check_printable(self, data):
        pass  # §9.1: any character may appear raw


class _Loader(_Reader, _Scanner, yaml.parser.Parser):
    def __init__(self, text):
        _Reader.__init__(self, text)
        _Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def decode_policy(raw):
    """§9.1 Encoding: UTF-8 (optional BOM), or UTF-16/32 by BOM or by the zero-byte pattern."""
    b = raw
    boms = [(b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
            (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8")]
    enc = None
    for bom, name in boms:
        if b.startswith(bom):
            enc, b = name, b[len(bom):]
            break
    if enc is None:
        if len(b) >= 4 and b[0] == 0 and b[1] == 0 and b[2] == 0:
            enc = "utf-32-be"
        elif len(b) >= 4 and b[1] == 0 and b[2] == 0 and b[3] == 0:
            enc = "utf-32-le"
        elif len(b) >= 2 and b[0] == 0:
            enc = "utf-16-be"
        elif len(b) >= 2 and b[1] == 0:
            enc = "utf-16-le"
        else:
            enc = "utf-8"
    try:
        text = b.decode(enc, "surrogateescape" if enc == "utf-8" else "strict")
    except UnicodeDecodeError:
        raise PolicyError(f"not valid {enc}")
    return text[1:] if text.startswith("\ufeff") else text


def yaml_tree(raw):
    """The single document of the policy as nodes: ("map", [(key, node)]), ("seq", [node]),
    ("scalar", content, tag, style). Tags are expanded (tag:yaml.org,2002:...), style None is
    plain."""
    text = decode_policy(raw)
    text = re.sub("\r(?!\n)", _STANDINS["\r"], text)
    for ch in ("\x85", "\u2028", "\u2029", "\x00"):
        text = text.replace(ch, _STANDINS[ch])
    loader = _Loader(text)
    events = []
    try:
        while loader.check_event():
            events.append(loader.get_event())
    except (yaml.YAMLError, ValueError, UnicodeError) as e:
        raise PolicyError(f"malformed YAML: {e}")
    finally:
        loader.dispose()
    docs = sum(isinstance(e, yaml.DocumentStartEvent) for e in events)
    if docs != 1:
        raise PolicyError(f"the stream holds {docs} documents, not one")
    for e in events:
        if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) is not None:
            raise PolicyError("anchors and aliases are not allowed")
    it = iter(e for e in events if isinstance(e, (yaml.NodeEvent, yaml.CollectionEndEvent)))

    def node(ev):
        if isinstance(ev, yaml.ScalarEvent):
            return ("scalar", ev.value.translate(_RESTORE), ev.tag, ev.style)
        if isinstance(ev, yaml.SequenceStartEvent):
            items = []
            for sub in it:
                if isinstance(sub, yaml.SequenceEndEvent):
                    return ("seq", items)
                items.append(node(sub))
        if isinstance(ev, yaml.MappingStartEvent):
            pairs, seen = [], set()
            for sub in it:
                if isinstance(sub, yaml.MappingEndEvent):
                    return ("map", pairs)
                key = node(sub)
                if key[0] != "scalar" or is_null(key):
                    raise PolicyError("a mapping key must be a non-null scalar")
                if key[1] in seen:
                    raise PolicyError(f"key {key[1]!r} appears twice in one mapping")
                seen.add(key[1])
                pairs.append((key[1], node(next(it))))
        raise PolicyError(f"unexpected YAML event {ev}")

    root = node(next(it))
    if is_null(root):
        raise PolicyError("the document is empty")
    return root


def is_null(n):
    return (n[0] == "scalar" and n[2] is None and n[3] is None
            and n[1] in ("", "~", "null", "Null", "NULL"))


def valid_utf8(s):
    return not any("\ud800" <= c <= "\udfff" for c in s)


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)


class _P:
    """Helpers of §9.2 and §9.3 that name where a rule broke."""

    @staticmethod
    def string(n, what):
        if n[0] != "scalar" or is_null(n):
            raise PolicyError(f"{what}: must be a string")
        return n[1]

    @staticmethod
    def text(n, what):
        s = _P.string(n, what)
        if not valid_utf8(s):
            raise PolicyError(f"{what}: not valid UTF-8")
        return s

    @staticmethod
    def match(n, what, pattern, kind):
        s = _P.string(n, what)
        if not re.fullmatch(pattern, s, re.ASCII):
            raise PolicyError(f"{what}: not a valid {kind}")
        return s

    @staticmethod
    def mapping(n, what, allowed, required):
        if n[0] != "map":
            raise PolicyError(f"{what}: must be a mapping")
        d = dict(n[1])
        for k in d:
            if k not in allowed:
                raise PolicyError(f"{what}: unknown key {k!r}")
        for k in required:
            if k not in d:
                raise PolicyError(f"{what}: missing key {k!r}")
        return d

    @staticmethod
    def seq(n, what, min_items):
        if n[0] != "seq":
            raise PolicyError(f"{what}: must be a sequence")
        if len(n[1]) < min_items:
            raise PolicyError(f"{what}: needs at least {min_items} item(s)")
        return n[1]

    @staticmethod
    def duration(n, what):
        s = _P.string(n, what)
        m = re.fullmatch(r"([0-9]+)([hdwy])", s, re.ASCII)
        if not m or not 1 <= int(m.group(1)) <= 1000000:
            raise PolicyError(f"{what}: not a valid duration")
        return int(m.group(1)) * {"h": 3600, "d": 86400, "w": 604800, "y": 31536000}[m.group(2)]


def key_template(s, identities, what):
    """§9.2 key template; returns its placeholder names in order."""
    if not valid_utf8(s) or len(s.encode()) > 1000:
        raise PolicyError(f"{what}: not text of at most 1000 bytes")
    names, i = [], 0
    while i < len(s):
        if s[i] == "}":
            raise PolicyError(f"{what}: '}}' closes no placeholder")
        if s[i] == "{":
            j = s.find("}", i + 1)
            if j < 0:
                raise PolicyError(f"{what}: '{{' is never closed")
            name = s[i + 1:j]
            if "{" in name:
                raise PolicyError(f"{what}: placeholders do not nest")
            if not name:
                raise PolicyError(f"{what}: empty placeholder")
            if name not in identities:
                raise PolicyError(f"{what}: placeholder {{{name}}} is not an identity type")
            names.append(name)
            i = j + 1
        else:
            i += 1
    if not names:
        raise PolicyError(f"{what}: no placeholder")
    return names


TRUE_FALSE = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
              "FALSE": False}


def read_policy(raw):
    """Validates a policy (§9.1-9.3) and returns its model: a dict with the canonical bytes
    (§9.5, 9.6), its hash and domain hashes (§9.7), and what §7 needs."""
    root = _P.mapping(yaml_tree(raw), "policy",
                      {"version", "name", "identities", "purposes", "deadlines", "domains"},
                      {"version", "identities", "domains"})
    if _P.string(root["version"], "version") != "1":
        raise PolicyError("version: must be 1")
    name = _P.text(root["name"], "name") if "name" in root else ""
    identities, canon_identities, normalizers = [], [], {}
    for i, n in enumerate(_P.seq(root["identities"], "identities", 1)):
        w = f"identities[{i}]"
        steps = []
        if n[0] == "map":
            m = _P.mapping(n, w, {"name", "normalize"}, {"name"})
            t = _P.match(m["name"], f"{w}.name", r"[a-z0-9_]+", "identity type name")
            for j, sn in enumerate(_P.seq(m["normalize"], f"{w}.normalize", 0)
                                   if "normalize" in m else []):
                step = _P.string(sn, f"{w}.normalize[{j}]")
                if step not in ("trim", "lowercase") or step in steps:
                    raise PolicyError(f"{w}.normalize[{j}]: not trim or lowercase, or twice")
                steps.append(step)
        else:
            t = _P.match(n, w, r"[a-z0-9_]+", "identity type name")
        if t in identities:
            raise PolicyError(f"{w}: {t} twice")
        identities.append(t)
        normalizers[t] = steps
        # A type without normalizers stays a plain string (§9.5).
        canon_identities.append({"name": t, "normalize": steps} if steps else t)

    deadlines = {"erasure": 30 * 86400, "max_extension": 60 * 86400}
    if "deadlines" in root:
        d = _P.mapping(root["deadlines"], "deadlines",
                       {"erasure", "max_extension", "access", "access_retention"}, ())
        for k in d:
            deadlines[k] = _P.duration(d[k], f"deadlines.{k}")

    domains, canon_domains = [], []
    for i, dn in enumerate(_P.seq(root["domains"], "domains", 1)):
        w = f"domains[{i}]"
        d = _P.mapping(dn, w, {"name", "postgres", "kafka", "s3"}, {"name"})
        dname = _P.match(d["name"], f"{w}.name", r"[a-z0-9_-]{1,200}", "domain name")
        if any(x["name"] == dname for x in domains):
            raise PolicyError(f"{w}.name: domain {dname} twice")
        if "postgres" not in d and "kafka" not in d and "s3" not in d:
            raise PolicyError(f"{w}: needs postgres, kafka or s3 (or several)")
        tables, types = [], []
        if "postgres" in d:
            pg = _P.mapping(d["postgres"], f"{w}.postgres", {"tables"}, {"tables"})
            for j, tn in enumerate(_P.seq(pg["tables"], f"{w}.postgres.tables", 1)):
                t = read_table(tn, f"{w}.postgres.tables[{j}]", normalizers)
                if any(x["table"] == t["table"] for x in tables):
                    raise PolicyError(f"{w}: table {t['table']} twice")
                tables.append(t)
                if t["identity"] not in types:
                    types.append(t["identity"])
        topics = []
        if "kafka" in d:
            kf = _P.mapping(d["kafka"], f"{w}.kafka", {"topics"}, {"topics"})
            for j, tn in enumerate(_P.seq(kf["topics"], f"{w}.kafka.topics", 1)):
                tw = f"{w}.kafka.topics[{j}]"
                t = _P.mapping(tn, tw, {"topic", "key", "sinks"}, {"topic", "key"})
                topic = topic_name(t["topic"], f"{tw}.topic")
                if any(x["topic"] == topic for x in topics):
                    raise PolicyError(f"{w}: topic {topic} twice")
                key = _P.string(t["key"], f"{tw}.key")
                for p in key_template(key, identities, f"{tw}.key"):
                    if p not in types:
                        types.append(p)
                tobj = {"key": key, "topic": topic}
                sinks = read_sinks(t["sinks"], f"{tw}.sinks") if "sinks" in t else []
                if sinks:  # `sinks: []` is the same as none
                    tobj["sinks"] = sinks
                topics.append(tobj)
        s3 = None
        if "s3" in d:
            sw = f"{w}.s3"
            sm = _P.mapping(d["s3"], sw, {"endpoint", "region", "buckets"}, {"region", "buckets"})
            s3 = {"region": _P.match(sm["region"], f"{sw}.region", r"[a-z0-9-]{1,50}", "region")}
            if "endpoint" in sm:
                s3["endpoint"] = s3_endpoint(sm["endpoint"], f"{sw}.endpoint")
            buckets = []
            for j, bn in enumerate(_P.seq(sm["buckets"], f"{sw}.buckets", 1)):
                b, btypes = read_bucket(bn, f"{sw}.buckets[{j}]", normalizers)
                kind = "jsonl" if "jsonl" in b else "objects"
                if any(x["bucket"] == b["bucket"] and x.get(kind) == b[kind] for x in buckets):
                    raise PolicyError(f"{w}: bucket {b['bucket']} with {kind} {b[kind]!r} twice")
                buckets.append(b)
                types.extend(t for t in btypes if t not in types)
            s3["buckets"] = buckets
        # A sink's covered_by names one of this domain's own buckets or tables (§9.3).
        # It must name a purger that erases: a bucket with an entry that deletes, a table that
        # deletes or anonymizes.
        own = {("s3_bucket", b["bucket"]) for b in (s3 or {}).get("buckets", [])}
        own |= {("table", x["table"]) for x in tables}
        erasing = {("s3_bucket", b["bucket"]) for b in (s3 or {}).get("buckets", []) if b["action"] == "delete"}
        erasing |= {("table", x["table"]) for x in tables if x["action"] != "retain"}
        for t in topics:
            for sk in t.get("sinks", []):
                for c in sk.get("covered_by", {}).items():
                    if c not in own:
                        raise PolicyError(f"{w}: sink {sk['name']} of topic {t['topic']}: "
                                          f"covered_by names {c[0]} {c[1]!r}, not the domain's")
                    if c not in erasing:
                        raise PolicyError(f"{w}: sink {sk['name']} of topic {t['topic']}: "
                                          f"covered_by names {c[0]} {c[1]!r}, which retains")
        obj = {"name": dname, "postgres": {"tables": tables}}
        if topics:
            obj["kafka_topics"] = topics
        if s3:
            obj["s3"] = s3
        domains.append({"name": dname, "types": types})
        canon_domains.append(obj)

    names = [d["name"] for d in domains]
    purposes, canon_purposes = {}, []
    for i, pn in enumerate(_P.seq(root["purposes"], "purposes", 0) if "purposes" in root else []):
        w = f"purposes[{i}]"
        p = _P.mapping(pn, w, {"name", "description", "domains", "erase_on_withdrawal"},
                       {"name", "domains"})
        pname = _P.match(p["name"], f"{w}.name", r"[a-z0-9_-]+", "purpose name")
        if pname in purposes:
            raise PolicyError(f"{w}.name: purpose {pname} twice")
        desc = _P.text(p["description"], f"{w}.description") if "description" in p else ""
        pdomains = []
        for j, n in enumerate(_P.seq(p["domains"], f"{w}.domains", 0)):
            s = _P.string(n, f"{w}.domains[{j}]")
            if s not in names or s in pdomains:
                raise PolicyError(f"{w}.domains[{j}]: not a domain of the policy, or twice")
            pdomains.append(s)
        erase = False
        if "erase_on_withdrawal" in p:
            s = _P.string(p["erase_on_withdrawal"], f"{w}.erase_on_withdrawal")
            if s not in TRUE_FALSE:
                raise PolicyError(f"{w}.erase_on_withdrawal: not true or false")
            erase = TRUE_FALSE[s]
        if erase and not pdomains:
            raise PolicyError(f"{w}: erase_on_withdrawal needs at least one domain")
        purposes[pname] = {"domains": pdomains, "erase": erase}
        canon_purposes.append({"description": desc, "domains": pdomains,
                               "erase_on_withdrawal": erase, "name": pname})

    policy_obj = {"deadlines": deadlines, "domains": canon_domains, "identities": canon_identities,
                  "name": name, "purposes": canon_purposes, "version": 1}
    canonical = canonical_json(policy_obj)
    return {
        "canonical": canonical,
        "hash": sha256(canonical),
        "domain_hashes": {d["name"]: sha256(canonical_json(dict(d, version=1)))
                          for d in canon_domains},
        "domains": domains,  # in file order, each with its identity types in order (§7)
        # T16: per domain, the sinks its erasure receipts list, as (topic, name, kind,
        # deletes_on_tombstone, covered_by as the receipt writes it).
        "sinks": {d["name"]: [(t["topic"], sk["name"], sk["kind"], sk["deletes_on_tombstone"],
                               "".join(f"{'s3 bucket' if k == 's3_bucket' else k} {v}"
                                       for k, v in sk.get("covered_by", {}).items()))
                              for t in d.get("kafka_topics", []) for sk in t.get("sinks", [])]
                  for d in canon_domains},
        "purposes": purposes,
        "max_extension": deadlines["max_extension"],
    }


def read_table(n, w, identities):
    """`identities`: each identity type of the policy -> its normalizers."""
    t = _P.mapping(n, w, {"table", "key", "identity", "action", "set", "basis", "period", "match",
                          "vacuum"}, {"table", "key", "identity", "action"})
    qualified = table_name(t["table"], f"{w}.table")
    key = _P.match(t["key"], f"{w}.key", IDENT.pattern, "identifier")
    identity = _P.string(t["identity"], f"{w}.identity")
    if identity not in identities:
        raise PolicyError(f"{w}.identity: not one of the policy's identities")
    action = _P.string(t["action"], f"{w}.action")
    if action not in ("delete", "anonymize", "retain"):
        raise PolicyError(f"{w}.action: not delete, anonymize or retain")
    for k, only in (("set", "anonymize"), ("basis", "retain"), ("period", "retain")):
        if (k in t) != (action == only):
            raise PolicyError(f"{w}.{k}: required with action {only} and invalid otherwise")
    obj = {"action": action, "identity": identity, "key": key, "table": qualified}
    # The comparison: as written, else case_insensitive for a type lower-cased by lethed.
    match = "case_insensitive" if "lowercase" in identities[identity] else "exact"
    if "match" in t:
        match = _P.string(t["match"], f"{w}.match")
        if match not in ("exact", "case_insensitive"):
            raise PolicyError(f"{w}.match: not exact or case_insensitive")
    if match != "exact":
        obj["match"] = match
    if "vacuum" in t:
        vacuum = _P.string(t["vacuum"], f"{w}.vacuum")
        if action == "retain" or vacuum not in ("after_purge", "full_after_purge"):
            raise PolicyError(f"{w}.vacuum: after_purge or full_after_purge, and only for delete or anonymize")
        obj["vacuum"] = vacuum
    if action == "retain":
        read_retention(t, w, obj)
    if action == "anonymize":
        s = t["set"]
        if s[0] != "map" or not s[1]:
            raise PolicyError(f"{w}.set: must be a mapping of at least one column")
        columns = []
        for col, v in s[1]:
            if not IDENT.fullmatch(col):
                raise PolicyError(f"{w}.set: {col!r} is not an identifier")
            if v[0] != "scalar":
                raise PolicyError(f"{w}.set.{col}: must be null, hash or a constant")
            if is_null(v) or v[2] == "tag:yaml.org,2002:null":
                columns.append({"column": col, "kind": "null"})
            elif v[2] is None and v[3] is None and v[1] == "hash":
                columns.append({"column": col, "kind": "hash"})
            else:
                if not valid_utf8(v[1]) or "\x00" in v[1]:
                    raise PolicyError(f"{w}.set.{col}: a constant must be text without U+0000")
                columns.append({"column": col, "kind": "constant", "value": v[1]})
        kinds = {c["column"]: c["kind"] for c in columns}
        if kinds.get(key) not in ("null", "hash"):
            raise PolicyError(f"{w}.set: must set the key column {key} to null or hash")
        obj["set"] = sorted(columns, key=lambda c: c["column"].encode())
    return obj


def table_name(n, what):
    """§9.2 table name; returns its qualified name, schema.name."""
    tname = _P.string(n, what)
    schema, _, rel = tname.partition(".") if "." in tname else ("public", "", tname)
    if not IDENT.fullmatch(schema) or not IDENT.fullmatch(rel):
        raise PolicyError(f"{what}: not a valid table name")
    return f"{schema}.{rel}"


def topic_name(n, what):
    """§9.2 topic name (also a sink's name)."""
    s = _P.match(n, what, r"[A-Za-z0-9._-]{1,249}", "topic name")
    if s in (".", ".."):
        raise PolicyError(f"{what}: not a valid topic name")
    return s


SINK_KINDS = ("elasticsearch", "jdbc", "s3", "other")


def read_sinks(n, w):
    """A topic's `sinks` (§9.3); returns their objects (§9.5), in file order. Whether a
    covered_by names one of the domain's buckets or tables is checked by the caller."""
    sinks = []
    for k, sn in enumerate(_P.seq(n, w, 1)):
        sw = f"{w}[{k}]"
        sk = _P.mapping(sn, sw, {"name", "kind", "deletes_on_tombstone", "covered_by"},
                        {"name", "kind", "deletes_on_tombstone"})
        name = topic_name(sk["name"], f"{sw}.name")
        if any(x["name"] == name for x in sinks):
            raise PolicyError(f"{sw}.name: sink {name} twice in its topic")
        kind = _P.string(sk["kind"], f"{sw}.kind")
        if kind not in SINK_KINDS:
            raise PolicyError(f"{sw}.kind: not elasticsearch, jdbc, s3 or other")
        deletes = _P.string(sk["deletes_on_tombstone"], f"{sw}.deletes_on_tombstone")
        if deletes not in TRUE_FALSE:
            raise PolicyError(f"{sw}.deletes_on_tombstone: not true or false")
        obj = {"deletes_on_tombstone": TRUE_FALSE[deletes], "kind": kind, "name": name}
        if "covered_by" in sk:
            cw = f"{sw}.covered_by"
            if obj["deletes_on_tombstone"]:
                raise PolicyError(f"{cw}: only for a sink that does not delete on tombstones")
            c = _P.mapping(sk["covered_by"], cw, {"s3_bucket", "table"}, ())
            if len(c) != 1:
                raise PolicyError(f"{cw}: needs exactly one of s3_bucket and table")
            if "s3_bucket" in c:
                obj["covered_by"] = {"s3_bucket": _P.string(c["s3_bucket"], f"{cw}.s3_bucket")}
            else:
                obj["covered_by"] = {"table": table_name(c["table"], f"{cw}.table")}
        sinks.append(obj)
    return sinks


def read_retention(m, w, obj):
    """The basis and period of a retain table or bucket, into obj (§9.3, §9.5)."""
    basis = _P.text(m["basis"], f"{w}.basis")
    if not basis.strip(" \t\r\n") or len(basis) > 500:
        raise PolicyError(f"{w}.basis: empty or longer than 500 characters")
    obj["basis"] = basis
    obj["period_seconds"] = _P.duration(m["period"], f"{w}.period")


# §9.2 S3 endpoint: a scheme, a host (or a bracketed IPv6 address), a port, at most one "/".
S3_ENDPOINT = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?",
                         re.ASCII)


def s3_endpoint(n, what):
    """§9.2 S3 endpoint; returns it without its trailing "/"."""
    s = _P.string(n, what)
    m = S3_ENDPOINT.fullmatch(s)
    if not m or (m.group(1) is not None and not 1 <= int(m.group(1)) <= 65535):
        raise PolicyError(f"{what}: not http[s]://host[:port]")
    return s[:-1] if s.endswith("/") else s


def read_bucket(n, w, identities):
    """An item of an s3 section's `buckets` (§9.3). `identities`: each identity type of the
    policy -> its normalizers. Returns its object (§9.5) and the identity types it uses, in
    first-use order (§7)."""
    b = _P.mapping(n, w, {"bucket", "objects", "jsonl", "field", "identity", "match", "action",
                          "basis", "period"}, {"bucket", "action"})
    name = _P.match(b["bucket"], f"{w}.bucket", r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                    "bucket name")
    if ".." in name:
        raise PolicyError(f"{w}.bucket: not a valid bucket name")
    if ("objects" in b) == ("jsonl" in b):
        raise PolicyError(f"{w}: needs exactly one of objects and jsonl")
    obj, types = {"bucket": name}, []
    if "objects" in b:
        prefix = _P.string(b["objects"], f"{w}.objects")
        for p in key_template(prefix, identities, f"{w}.objects"):
            if p not in types:
                types.append(p)
        if prefix.endswith("}"):
            raise PolicyError(f"{w}.objects: ends with a placeholder")
        for k in ("field", "identity", "match"):
            if k in b:
                raise PolicyError(f"{w}.{k}: only for jsonl buckets")
        obj["objects"] = prefix
    else:
        prefix = _P.text(b["jsonl"], f"{w}.jsonl")
        if len(prefix.encode()) > 1000 or "{" in prefix or "}" in prefix:
            raise PolicyError(f"{w}.jsonl: longer than 1000 bytes, or holds a brace")
        for k in ("field", "identity"):
            if k not in b:
                raise PolicyError(f"{w}: missing key {k!r} (required with jsonl)")
        field = _P.text(b["field"], f"{w}.field")
        if not 1 <= len(field.encode()) <= 255:
            raise PolicyError(f"{w}.field: not 1 to 255 bytes")
        identity = _P.string(b["identity"], f"{w}.identity")
        if identity not in identities:
            raise PolicyError(f"{w}.identity: not one of the policy's identities")
        # As a table's: as written, else case_insensitive for a type lower-cased by lethed.
        match = "case_insensitive" if "lowercase" in identities[identity] else "exact"
        if "match" in b:
            match = _P.string(b["match"], f"{w}.match")
            if match not in ("exact", "case_insensitive"):
                raise PolicyError(f"{w}.match: not exact or case_insensitive")
        obj.update(jsonl=prefix, field=field, identity=identity)
        if match != "exact":
            obj["match"] = match
        types.append(identity)
    action = _P.string(b["action"], f"{w}.action")
    if action not in ("delete", "retain"):
        raise PolicyError(f"{w}.action: not delete or retain")
    for k in ("basis", "period"):
        if (k in b) != (action == "retain"):
            raise PolicyError(f"{w}.{k}: required with action retain and invalid otherwise")
    obj["action"] = action
    if action == "retain":
        read_retention(b, w, obj)
    return obj, types


def canonical_json(value):
    """§9.6: sorted keys, no white space, raw UTF-8, only the escapes JSON requires."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------------------------
# §1, §2, §5: segments, records, the chain and batches.

SEG_NAME = re.compile(r"seg-([0-9]{20})\.log")
TMP_NAME = re.compile(r"checkpoint\.tmp-[0-9a-fA-F]{16}")
HEADER = struct.Struct("<8sIIQII")
MAX_RECORD = 16 << 20
SECTOR = 512


class Record:
    def __init__(self, seg, version, offset, payload):
        self.seg, self.version, self.offset, self.payload = seg, version, offset, payload
        self.entry = None
        self.leaf = leaf_hash(payload)

    def where(self, index):
        return f"entry {index} ({self.seg} offset {self.offset})"


def ends_in_zeros(data, start, end):
    """§5.2: the bytes from some point inside the record [start, end) to the end of the file
    are all zero, and go on past the record's end or are at least 8 (a write torn at any
    byte, nothing later on disk)."""
    z = len(data)
    while z > start and data[z - 1] == 0:
        z -= 1
    return z < min(end, len(data)) and (len(data) > end or len(data) - z >= 8)


def unwritten_sector(data, start, end):
    """§5.2: for some 512-byte sector the record [start, end) overlaps, the bytes from the
    record's (or the sector's) start to the sector's (or the file's) end are all zero, and are
    at least 8, or run from the sector's start to the file's end (a lost last sector)."""
    sector = start - start % SECTOR
    while sector < end:
        a, b = max(start, sector), min(sector + SECTOR, len(data))
        if b > a and not any(data[a:b]) and (b - a >= 8 or (a == sector and b == len(data))):
            return True
        sector += SECTOR
    return False


def read_segment(path, name, first_expected, last, report):
    data = open(path, "rb").read()
    if len(data) < HEADER.size:
        # §5.2: a last segment shorter than its header was being created when a crash came.
        if not last:
            raise Failed(f"{name}: header is {len(data)} bytes, not {HEADER.size}")
        if any(data):
            report.append(f"torn tail: {name} offset 0, {len(data)} bytes (a segment header cut "
                          f"short), an unacknowledged write, cut by lethed")
        return []
    magic, version, flags, first_seq, reserved, crc = HEADER.unpack_from(data)
    if magic != b"LETHELOG":
        raise Failed(f"{name}: bad magic")
    if crc32c(data[:28]) != crc:
        raise Failed(f"{name}: header CRC mismatch")
    if version not in (1, 2):
        raise Failed(f"{name}: unknown version {version}")
    if flags != 0 or reserved != 0:
        raise Failed(f"{name}: header flags or reserved field is not 0")
    if name != f"seg-{first_seq:020d}.log":
        raise Failed(f"{name}: file name does not match its first_seq {first_seq}")
    if first_seq != first_expected:
        raise Failed(f"{name}: first_seq {first_seq}, but {first_expected} entries precede it")
    records, pos = [], HEADER.size

    def torn(why):
        if not last:
            raise Failed(f"{name} offset {pos}: {why} in an earlier segment (not the last)")
        report.append(f"torn tail: {name} offset {pos}, {len(data) - pos} bytes ({why}), "
                      f"an unacknowledged write, cut by lethed")

    while pos < len(data):
        rest = data[pos:pos + 8]
        if not any(rest):  # a zero record header (or fewer than 8 zero bytes)
            if not any(data[pos:]):
                if not last:
                    raise Failed(f"{name} offset {pos}: zero bytes after the last record of a "
                                 f"sealed segment")
                break  # pre-zeroed space
            torn("zero record header followed by non-zero bytes")
            break
        if len(rest) < 8:
            torn("incomplete record header")
            break
        length, crc = struct.unpack("<II", rest)
        if pos + 8 + length > len(data):
            torn(f"incomplete record: declares {length} bytes, {len(data) - pos - 8} left")
            break
        payload = data[pos + 8:pos + 8 + length]
        bad = None
        if length == 0 or length > MAX_RECORD:
            bad = f"record length {length} out of range"
        elif crc32c(rest[:4] + payload) != crc:
            bad = "record CRC mismatch"
        if bad:
            if unwritten_sector(data, pos, pos + 8 + length):
                torn(bad + " over an unwritten sector")
                break
            if ends_in_zeros(data, pos, pos + 8 + length):
                torn(bad + ", zeros from inside it to the end of the file")
                break
            raise Failed(f"{name} offset {pos}: {bad} (corruption: no unwritten sector), entry "
                         f"{first_seq + len(records)}")
        records.append(Record(name, version, pos, payload))
        pos += 8 + length
    return records


def read_ledger(ledger_dir, report, warnings):
    """Reads every segment; returns (records, complete) where records[:complete] are the
    complete batches and the rest an incomplete batch (§2, §5)."""
    segs = []
    for name in sorted(os.listdir(ledger_dir)):
        # §1: any name beginning with `seg-` must be a valid segment name.
        if name.startswith("seg-"):
            if not SEG_NAME.fullmatch(name) or not os.path.isfile(os.path.join(ledger_dir, name)):
                raise Failed(f"{name}: a seg- file that is not a validly named segment")
            segs.append(name)
        elif TMP_NAME.fullmatch(name):
            report.append(f"temporary file {name} of an interrupted replace, not read")
        elif name not in ("checkpoint", "checkpoint-history.log"):
            warnings.append(f"{name} is not a ledger file; ignored")
    records = []
    for i, name in enumerate(segs):
        records += read_segment(os.path.join(ledger_dir, name), name, len(records),
                                i == len(segs) - 1, report)

    prev, pending, complete = b"\x00" * 32, 0, 0
    for i, r in enumerate(records):
        w = r.where(i)
        try:
            r.entry = pb.LedgerEntry.FromString(r.payload)
        except DecodeError as e:
            raise Failed(f"{w}: not a lethe.v1.LedgerEntry ({e})")
        e = r.entry
        if e.seq != i:
            raise Failed(f"{w}: seq is {e.seq}")
        if e.prev_hash != prev:
            raise Failed(f"{w}: prev_hash is not the leaf hash of entry {i - 1} (broken chain)")
        if r.version == 1 and e.batch_remaining != 0:
            raise Failed(f"{w}: batch_remaining {e.batch_remaining} in a version 1 segment")
        if pending:
            if records[i - 1].seg != r.seg:
                raise Failed(f"{w}: a batch spans two segments")
            if e.batch_remaining != pending - 1:
                raise Failed(f"{w}: batch_remaining {e.batch_remaining}, expected {pending - 1} "
                             f"(broken batch)")
        pending = e.batch_remaining
        if pending == 0:
            complete = i + 1
        prev = r.leaf
    if len(records) > complete and records[-1].seg != segs[-1]:
        raise Failed(f"{records[-1].where(len(records) - 1)}: an incomplete batch in an earlier "
                     f"segment")
    return records, complete


# --------------------------------------------------------------------------------------------
# §2.1 and §7: the rule table, every rule and no other. Messages start with the rule's id.

WHO = {
    "agent_enrolled": ("admin",), "agent_key_revoked": ("admin",),
    "policy_activated": ("admin", "lethed"),
    "request_submitted": ("operator",), "identities_added": ("operator",),
    "deadline_extended": ("operator",), "consent_changed": ("operator",),
}
RECEIPT_TYPE = "lethe.v1.Receipt"
DATE = re.compile(r"(?<![0-9])[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])")
DIGIT_RUN = re.compile(r"[0-9](?:[ .\-/()+]?[0-9])*")


def key_id(raw):
    return hashlib.sha256(raw).digest()[:8].hex()


def ed25519_point_ok(raw):
    """K1: 32 bytes that decode to a curve point (RFC 8032 section 5.1.3)."""
    p = 2**255 - 19
    d = -121665 * pow(121666, p - 2, p) % p
    if len(raw) != 32:
        return False
    y = int.from_bytes(raw, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= p:
        return False
    x2 = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p:
        x = x * pow(2, (p - 1) // 4, p) % p
    if (x * x - x2) % p:
        return False
    return not (x == 0 and sign)


def free_text_problem(s):
    """§2.1: why free text in clear breaks the rule, or None."""
    if len(s.encode()) > 500:
        return "is longer than 500 bytes"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in s):
        return "holds a control character"
    if "@" in s:
        return "holds '@'"
    for run in DIGIT_RUN.finditer(DATE.sub("#", s)):
        if sum(c in "0123456789" for c in run.group()) >= 7:
            return "holds a run of 7 or more digits"
    return None


def sealed_problem(b):
    """§2.1: why a sealed field does not look sealed, or None."""
    if len(b) < 28:
        return f"is {len(b)} bytes, fewer than 28"
    if all(0x20 <= c <= 0x7E or c in (9, 10, 13) for c in b):
        return "reads as text"
    return None


def peek_outcome(env):
    """The outcome a receipt envelope's body states, read only to route it to its rules
    (which verify the signature before they trust anything in it); None when it does not
    parse."""
    try:
        return mpb.Receipt.FromString(env.body).outcome
    except DecodeError:
        return None


def tables_to_vacuum(rc):
    """§7 tables to vacuum of a COMPLETED erasure receipt: (table, action), in its order."""
    return [(t.table, t.action) for t in rc.tables
            if t.action in ("delete", "anonymize") and t.rows_affected > 0]


def receipt_gaps(rc):
    """D5's gaps of a receipt: the sinks it names that keep the subject's copy (they do not
    delete on tombstones, and no `covered_by` names what erases it)."""
    return [sk for sk in rc.sinks if not sk.deletes_on_tombstone and not sk.covered_by]


class Semantics:
    """Feeds the entries of whole batches in order; finish() applies the rules marked at end."""

    def __init__(self, trusted_key, accept_unauthenticated, allow_unknown_fields):
        self.trusted_key = trusted_key
        self.accept_unauth = accept_unauthenticated
        self.allow_unknown = allow_unknown_fields
        self.origin = None
        self.prev_time = None
        self.active = None  # the model of the last PolicyActivated
        self.activations = 0
        self.keys = {}  # (domain, key id) -> {"key": raw, "revoked": entry index or None}
        self.requests = {}  # request id -> state
        self.commands = {}  # command id -> [CommandIssued, has a receipt]
        # V: command id -> (tables to vacuum, completed_at_unix_ms) of its COMPLETED receipt,
        # until its PHYSICALLY_PURGED receipt; the commands that got one.
        self.awaiting_vacuum = {}
        self.vacuumed = set()
        self.planned_by = {}  # request id -> the ConsentChanged that names it
        self.last_consent = {}  # (identity type, token, purpose) -> last status
        self.counts = {"unauthenticated": 0, "unknown_fields": 0, "receipts": 0,
                       "requests": 0, "completed": 0, "done": 0, "gaps": 0, "failed": 0,
                       "consent": 0, "policies": 0}
        self.who = []

    def check(self, i, e, w):
        kind = e.WhichOneof("body")
        if has_unknown_fields(e):
            self.unknown(w, "S5")
        if self.prev_time is not None and e.time_unix_ms < self.prev_time:
            raise Failed(f"{w}: S6: time_unix_ms before the time of the entry before it")
        self.prev_time = e.time_unix_ms
        if kind is None:
            raise Failed(f"{w}: S7: entry has no body")
        if i == 0:
            if kind != "log_created":
                raise Failed(f"{w}: L1: entry 0 is not LogCreated but {kind}")
            if e.log_created.control_plane_public_key != self.trusted_key:
                raise Failed(f"{w}: L2: LogCreated names another control-plane key")
            self.origin = e.log_created.origin
            return
        if kind == "log_created":
            raise Failed(f"{w}: L3: LogCreated may only be entry 0")
        body = getattr(e, kind)
        self.check_actor(i, kind, e, body, w)
        getattr(self, kind)(i, body, w)

    def unknown(self, w, rule):
        if not self.allow_unknown:
            raise Failed(f"{w}: {rule}: holds a protobuf field proto/lethe/v1 does not define "
                         f"(--allow-unknown-fields accepts it)")
        self.counts["unknown_fields"] += 1

    def free_text(self, s, what, w, rule):
        problem = free_text_problem(s)
        if problem:
            raise Failed(f"{w}: {rule}: {what} {problem} (free text in clear, §2.1)")

    def sealed(self, b, what, w, rule):
        problem = sealed_problem(b)
        if problem:
            raise Failed(f"{w}: {rule}: {what} {problem} (not a sealed field, §2.1)")

    def check_actor(self, i, kind, e, body, w):
        roles = WHO.get(kind)
        if kind == "package_released" and body.reason == pb.PackageReleased.EXPORTED:
            roles = ("operator",)  # W4: an export is an operator's; an expiry is lethed's own
        if roles is None:
            return
        if kind == "request_submitted" and body.request_id in self.planned_by:
            return  # W4: planned by a consent withdrawal, whose entry carries the actor
        role = e.actor.role if e.HasField("actor") else ""
        rule = "W1" if kind in ("agent_enrolled", "agent_key_revoked", "policy_activated") else "W4"
        if role in ("", "insecure"):
            if self.accept_unauth:
                self.counts["unauthenticated"] += 1
                return
            raise Failed(f"{w}: W2: {kind} has no authenticated caller "
                         f"(--accept-unauthenticated accepts it)")
        if role not in roles:
            raise Failed(f"{w}: {rule}: {kind} by role {role!r}; only "
                         f"{' or '.join(repr(r) for r in roles)} may")
        if rule == "W1":
            self.who.append(f"{kind} at entry {i} by {role} {e.actor.name}")

    # ---- K: agent keys
    def agent_enrolled(self, i, b, w):
        if not ed25519_point_ok(b.public_key):
            raise Failed(f"{w}: K1: public_key is no valid Ed25519 key")
        if b.key_id != key_id(b.public_key):
            raise Failed(f"{w}: K2: key_id mismatch")
        if (b.domain, b.key_id) in self.keys:
            raise Failed(f"{w}: K3: key {b.key_id} enrolled twice for domain {b.domain}")
        self.keys[(b.domain, b.key_id)] = {"key": b.public_key, "revoked": None}

    def agent_key_revoked(self, i, b, w):
        k = self.keys.get((b.domain, b.key_id))
        if k is None:
            raise Failed(f"{w}: K4: key {b.key_id} was never enrolled for its domain {b.domain}")
        if k["revoked"] is not None:
            raise Failed(f"{w}: K5: key {b.key_id} revoked twice")
        self.free_text(b.reason, "AgentKeyRevoked.reason", w, "K6")
        k["revoked"] = i

    # ---- A: policies
    def policy_activated(self, i, b, w):
        try:
            model = read_policy(b.policy_yaml)
        except PolicyError as err:
            raise Failed(f"{w}: A1: the stored policy does not validate: {err}")
        if model["hash"] != b.policy_hash:
            raise Failed(f"{w}: A2: the policy does not hash to its policy_hash")
        if b.activation != self.activations + 1:
            raise Failed(f"{w}: A3: activation {b.activation} follows activation "
                         f"{self.activations}")
        self.activations += 1
        self.active = model
        self.counts["policies"] += 1

    # ---- Q: requests
    def request_submitted(self, i, b, w):
        rid = b.request_id
        if rid in self.requests:
            raise Failed(f"{w}: Q1: request {rid} submitted twice")
        targets = set(b.target_domains)
        needs = {n.domain: list(n.identity_types) for n in b.needs_identity}
        if b.kind not in (pb.RequestSubmitted.ERASURE, pb.RequestSubmitted.ACCESS):
            raise Failed(f"{w}: Q9: request {rid} has no known kind")
        if b.kind == pb.RequestSubmitted.ACCESS and b.consent_change_id:
            raise Failed(f"{w}: Q9: access request {rid} names a consent change")
        if not targets and not needs:
            raise Failed(f"{w}: Q2: request {rid} has no domain in scope")
        if any(len(t.token) != 32 for t in b.subject):
            raise Failed(f"{w}: Q3: an identity token is not 32 bytes")
        self.sealed(b.sealed, "RequestSubmitted.sealed", w, "Q4")
        if self.active is None:
            raise Failed(f"{w}: Q8: request {rid} before any policy was activated")
        policy = self.active
        if b.consent_change_id:
            change = self.planned_by.get(rid)
            if change is None or change.change_id != b.consent_change_id:
                raise Failed(f"{w}: N13: request {rid} names consent change "
                             f"{b.consent_change_id}, which did not plan it")
            if b.scope_purpose != change.purpose:
                raise Failed(f"{w}: N14: scope purpose differs from the consent change's")
            scope = set(policy["purposes"].get(b.scope_purpose, {"domains": []})["domains"])
        else:
            scope = {d["name"] for d in policy["domains"]}
        have = {t.type for t in b.subject}
        want_targets, want_needs = set(), {}
        for d in policy["domains"]:
            if d["name"] in scope:
                lacking = [t for t in d["types"] if t not in have]
                if lacking:
                    want_needs[d["name"]] = lacking
                else:
                    want_targets.add(d["name"])
        if targets & set(needs):
            raise Failed(f"{w}: Q7: a domain is both targeted and waiting")
        planned = targets | set(needs)
        expected = want_targets | set(want_needs)
        if planned - expected or expected - planned or targets != want_targets or needs != want_needs:
            dropped = sorted(expected - planned) or sorted(want_targets - targets)
            added = sorted(planned - expected) or sorted(targets - want_targets)
            raise Failed(f"{w}: Q5: request {rid}: plan drops domain(s) {dropped}, adds "
                         f"{added}, or lists other missing types than {want_needs}")
        if b.policy_hash != policy["hash"]:
            raise Failed(f"{w}: Q6: request {rid} was not planned with the active policy")
        self.requests[rid] = {
            "index": i, "policy": policy, "have": have, "targets": targets,
            "waiting": set(needs), "commanded": set(), "receipts": {}, "gapped": set(),
            "completed": False, "due": b.due_unix_ms, "extended": 0,
            "access": b.kind == pb.RequestSubmitted.ACCESS, "released": False,
        }
        self.counts["requests"] += 1

    # ---- M: commands
    def command_issued(self, i, b, w):
        r = self.requests.get(b.request_id)
        if r is None:
            raise Failed(f"{w}: M1: command for an unknown request {b.request_id}")
        if b.domain not in r["targets"]:
            raise Failed(f"{w}: M2: command for domain {b.domain}, outside the plan")
        if r["completed"]:
            raise Failed(f"{w}: M3: command after the request completed")
        if b.command_id in self.commands:
            raise Failed(f"{w}: M4: command {b.command_id} issued twice")
        if len(b.command_digest) != 32:
            raise Failed(f"{w}: M5: command digest is not 32 bytes")
        self.sealed(b.sealed_envelope, "CommandIssued.sealed_envelope", w, "M6")
        if b.domain_policy_hash != self.active["domain_hashes"].get(b.domain):
            raise Failed(f"{w}: M7: domain_policy_hash is not the active policy's hash of "
                         f"domain {b.domain}")
        self.commands[b.command_id] = [b, False, self.active["sinks"].get(b.domain, [])]
        r["commanded"].add(b.domain)

    # ---- T: receipts
    def receipt_recorded(self, i, b, w):
        c = self.commands.get(b.command_id)
        if c is None:
            raise Failed(f"{w}: T1: receipt for an unknown command {b.command_id}")
        if (c[0].request_id, c[0].domain) != (b.request_id, b.domain):
            raise Failed(f"{w}: T2: receipt does not match its command's request and domain")
        if peek_outcome(b.receipt) == mpb.Receipt.PHYSICALLY_PURGED:
            return self.physical_receipt(i, b, w, c)
        if c[1]:
            raise Failed(f"{w}: T3: second receipt for command {b.command_id}")
        r = self.requests[b.request_id]
        if b.domain in r["receipts"]:
            raise Failed(f"{w}: T4: second receipt from domain {b.domain}")
        rc = self.signed_receipt(i, b, w, c)
        if r["access"]:
            # T15: an access command reads; its receipt reports no purge, and a COMPLETED one
            # names its part.
            if rc.tombstones or rc.s3 or rc.sinks or any(t.rows_affected or t.rows_remaining for t in rc.tables):
                raise Failed(f"{w}: T15: an access receipt reports a purge")
            if rc.outcome == mpb.Receipt.COMPLETED and (
                    len(rc.part_sha256) != 32 or len(rc.part_sealed_sha256) != 32 or not rc.part_chunks):
                raise Failed(f"{w}: T15: a COMPLETED access receipt without its part's digests")
        else:
            if rc.outcome == mpb.Receipt.COMPLETED and not rc.verified_zero_remaining:
                raise Failed(f"{w}: T10: COMPLETED without the zero-remaining check")
            if rc.outcome == mpb.Receipt.COMPLETED and any(
                    b.objects_remaining or b.lines_remaining for b in rc.s3):
                raise Failed(f"{w}: T10: COMPLETED with objects or lines remaining in S3")
            if rc.outcome == mpb.Receipt.COMPLETED and [
                    (s.topic, s.name, s.kind, s.deletes_on_tombstone, s.covered_by)
                    for s in rc.sinks] != c[2]:
                raise Failed(f"{w}: T16: the receipt's sinks differ from those of domain "
                             f"{b.domain} in the policy its command carried")
            if rc.part_sha256 or rc.part_sealed_sha256:
                raise Failed(f"{w}: T15: an erasure receipt carries a part")
        if rc.outcome not in (mpb.Receipt.COMPLETED, mpb.Receipt.FAILED):
            raise Failed(f"{w}: T11: the receipt has no outcome (COMPLETED or FAILED)")
        if rc.physically_gone_by_unix_ms or any(t.vacuum or t.vacuumed_unix_ms for t in rc.tables):
            raise Failed(f"{w}: V4: a receipt other than PHYSICALLY_PURGED reports a vacuum")
        self.free_text(rc.error, "Receipt.error", w, "T13")
        c[1] = True
        r["receipts"][b.domain] = rc.outcome
        if rc.outcome == mpb.Receipt.COMPLETED and receipt_gaps(rc):
            r["gapped"].add(b.domain)
        if rc.outcome == mpb.Receipt.COMPLETED and not r["access"]:
            dead = tables_to_vacuum(rc)
            if dead:
                # V1, V3: what its PHYSICALLY_PURGED receipt must list, and from when.
                self.awaiting_vacuum[b.command_id] = (dead, rc.completed_at_unix_ms)
        self.counts["receipts"] += 1

    def signed_receipt(self, i, b, w, c):
        """T5 to T9 and T12 of a ReceiptRecorded `b` for command `c`: its Receipt, verified."""
        env = b.receipt
        k = self.keys.get((b.domain, env.key_id))
        if k is None:
            raise Failed(f"{w}: T5: key {env.key_id!r} not enrolled for domain {b.domain}")
        if k["revoked"] is not None and k["revoked"] < i:
            raise Failed(f"{w}: T6: key {env.key_id} revoked before the receipt")
        if (env.payload_type != RECEIPT_TYPE or not ed25519_ok(
                k["key"], env.signature, RECEIPT_TYPE.encode() + b"\n" + env.body)):
            raise Failed(f"{w}: T7: the receipt's signature does not verify")
        try:
            rc = mpb.Receipt.FromString(env.body)
        except DecodeError as err:
            raise Failed(f"{w}: T8: the signed body is not a lethe.v1.Receipt ({err})")
        if has_unknown_fields(rc):
            self.unknown(w + " (its signed Receipt)", "T12")
        if (rc.command_id, rc.request_id, rc.domain) != (b.command_id, b.request_id, b.domain):
            raise Failed(f"{w}: T8: the signed receipt names another command, request or domain")
        if rc.command_digest != c[0].command_digest:
            raise Failed(f"{w}: T9: the receipt is for different command bytes")
        return rc

    # ---- V: the second receipt, PHYSICALLY_PURGED
    def physical_receipt(self, i, b, w, c):
        rc = self.signed_receipt(i, b, w, c)
        if self.requests[b.request_id]["access"]:
            raise Failed(f"{w}: V4: an access receipt reports a physical purge")
        if (rc.tombstones or rc.s3 or rc.sinks or rc.part_sha256 or rc.part_sealed_sha256
                or rc.part_chunks or rc.error or rc.verified_zero_remaining or not rc.tables):
            raise Failed(f"{w}: V4: a PHYSICALLY_PURGED receipt carries more than its tables' vacuums")
        for t in rc.tables:
            if t.vacuum not in ("vacuum", "vacuum full", "observed") or t.vacuumed_unix_ms <= 0:
                raise Failed(f"{w}: V4: table {t.table} has no known vacuum or no vacuum time")
            if (t.rows_affected or t.rows_remaining or t.rows_withheld or t.rows_near_match
                    or t.rows_exported or t.basis or t.retention_period_seconds or t.columns):
                raise Failed(f"{w}: V4: table {t.table} reports rows")
        if rc.physically_gone_by_unix_ms != max(t.vacuumed_unix_ms for t in rc.tables):
            raise Failed(f"{w}: V4: physically_gone_by_unix_ms is not the latest vacuum time")
        if b.command_id in self.vacuumed:
            raise Failed(f"{w}: V2: second PHYSICALLY_PURGED receipt for command {b.command_id}")
        want = self.awaiting_vacuum.get(b.command_id)
        if want is None:
            raise Failed(f"{w}: V1: PHYSICALLY_PURGED receipt before its command's COMPLETED "
                         f"receipt, or for one that left no dead rows to vacuum")
        dead, completed_at = want
        if [(t.table, t.action) for t in rc.tables] != dead:
            raise Failed(f"{w}: V3: its tables are not the tables its COMPLETED receipt deleted "
                         f"or rewrote rows in")
        if any(t.vacuumed_unix_ms < completed_at for t in rc.tables):
            raise Failed(f"{w}: V3: a table was vacuumed before the purge committed")
        if rc.completed_at_unix_ms < rc.physically_gone_by_unix_ms:
            raise Failed(f"{w}: V3: signed before its last vacuum")
        del self.awaiting_vacuum[b.command_id]
        self.vacuumed.add(b.command_id)
        self.counts["receipts"] += 1  # a receipt like any other in the summary

    # ---- D: completions
    def request_completed(self, i, b, w):
        r = self.requests.get(b.request_id)
        if r is None:
            raise Failed(f"{w}: D1: completion of an unknown request {b.request_id}")
        if r["completed"]:
            raise Failed(f"{w}: D2: request {b.request_id} completed twice")
        if r["waiting"]:
            raise Failed(f"{w}: D3: {sorted(r['waiting'])} still needed an identity")
        missing = sorted(d for d in r["targets"] if d not in r["receipts"])
        if missing:
            raise Failed(f"{w}: D4: completed without a receipt from domain {missing}")
        # D5: FAILED unless every receipt is COMPLETED; then DONE_WITH_GAPS when one of them
        # names a gap (a sink that keeps the subject's copy); else COMPLETED.
        O = pb.RequestCompleted
        if any(r["receipts"][d] != mpb.Receipt.COMPLETED for d in r["targets"]):
            want = O.FAILED
        elif r["gapped"] & r["targets"]:
            want = O.DONE_WITH_GAPS
        else:
            want = O.COMPLETED
        if b.outcome != want:
            got = O.Outcome.Name(b.outcome) if b.outcome in O.Outcome.values() else b.outcome
            raise Failed(f"{w}: D5: outcome {got} contradicts the receipts "
                         f"({O.Outcome.Name(want)})")
        r["completed"] = True
        self.counts["completed"] += 1
        self.counts[{O.COMPLETED: "done", O.DONE_WITH_GAPS: "gaps", O.FAILED: "failed"}[want]] += 1

    # ---- R: access package releases
    def package_released(self, i, b, w):
        r = self.requests.get(b.request_id)
        if r is None or not r["access"] or not r["completed"] or r["released"]:
            raise Failed(f"{w}: R1: package release of {b.request_id}, which is no completed "
                         f"access request with a package held")
        if b.reason not in (pb.PackageReleased.EXPORTED, pb.PackageReleased.EXPIRED):
            raise Failed(f"{w}: R2: package release has no reason")
        if b.reason == pb.PackageReleased.EXPORTED and len(b.package_sha256) != 32:
            raise Failed(f"{w}: R2: an exported package's digest is not 32 bytes")
        r["released"] = True

    # ---- I: added identities
    def identities_added(self, i, b, w):
        r = self.requests.get(b.request_id)
        if r is None:
            raise Failed(f"{w}: I1: identities added to an unknown request {b.request_id}")
        if r["completed"]:
            raise Failed(f"{w}: I2: identities added after the request completed")
        if any(len(t.token) != 32 for t in b.subject):
            raise Failed(f"{w}: I3: an identity token is not 32 bytes")
        targets = set(b.target_domains)
        if not targets:
            raise Failed(f"{w}: I4: identities added for no domain")
        if targets - r["waiting"]:
            raise Failed(f"{w}: I5: targets {sorted(targets - r['waiting'])}, which did not "
                         f"wait for one")
        self.sealed(b.sealed, "IdentitiesAdded.sealed", w, "I6")
        r["have"] |= {t.type for t in b.subject}
        types = {d["name"]: d["types"] for d in r["policy"]["domains"]}
        ready = {d for d in r["waiting"] if all(t in r["have"] for t in types.get(d, []))}
        if ready - targets:
            raise Failed(f"{w}: I7: plan drops domain(s) {sorted(ready - targets)}")
        r["waiting"] -= targets
        r["targets"] |= targets

    # ---- X: deadline extensions
    def deadline_extended(self, i, b, w):
        r = self.requests.get(b.request_id)
        if r is None:
            raise Failed(f"{w}: X1: extension of an unknown request {b.request_id}")
        if r["completed"]:
            raise Failed(f"{w}: X2: extension of a request that had completed")
        if b.extension_seconds <= 0:
            raise Failed(f"{w}: X3: extension of {b.extension_seconds} s is not positive")
        r["extended"] += b.extension_seconds
        if r["extended"] > self.active["max_extension"]:
            raise Failed(f"{w}: X4: extensions add up to {r['extended']} s, more than "
                         f"max_extension {self.active['max_extension']} s")
        if b.new_due_unix_ms != r["due"] + b.extension_seconds * 1000:
            raise Failed(f"{w}: X5: new due date is not the previous due date plus the extension")
        self.sealed(b.sealed_reason, "DeadlineExtended.sealed_reason", w, "X6")
        r["due"] = b.new_due_unix_ms

    # ---- N: consent
    def consent_changed(self, i, b, w):
        if len(b.subject.token) != 32:
            raise Failed(f"{w}: N1: consent token is not 32 bytes")
        if b.status not in (mpb.GRANTED, mpb.WITHDRAWN):
            raise Failed(f"{w}: N2: consent change has no status")
        if not b.purpose:
            raise Failed(f"{w}: N3: consent change names no purpose")
        self.free_text(b.source, "ConsentChanged.source", w, "N4")
        if self.active is None:
            raise Failed(f"{w}: N5: consent change before any policy was activated")
        if b.policy_hash != self.active["hash"]:
            raise Failed(f"{w}: N6: consent change not recorded under the active policy")
        purpose = self.active["purposes"].get(b.purpose)
        if purpose is None:
            raise Failed(f"{w}: N7: the active policy does not declare purpose {b.purpose}")
        key = (b.subject.type, b.subject.token, b.purpose)
        again = self.last_consent.get(key) == mpb.WITHDRAWN
        if b.status == mpb.GRANTED and b.erasure_request_id:
            raise Failed(f"{w}: N9: a consent grant planned an erasure")
        if b.status == mpb.WITHDRAWN:
            if not purpose["erase"] and b.erasure_request_id:
                raise Failed(f"{w}: N10: a withdrawal without erase_on_withdrawal planned an "
                             f"erasure")
            if again and b.erasure_request_id:
                raise Failed(f"{w}: N11: second withdrawal in a row planned an erasure")
            if purpose["erase"] and not again and not b.erasure_request_id:
                raise Failed(f"{w}: N8: withdrawal of an erase_on_withdrawal purpose planned "
                             f"no erasure")
        self.last_consent[key] = b.status
        if b.erasure_request_id:
            self.planned_by[b.erasure_request_id] = b
        self.counts["consent"] += 1

    def finish(self):
        for rid, change in self.planned_by.items():
            if rid not in self.requests:
                raise Failed(f"N12: consent change {change.change_id} names erasure {rid}, "
                             f"which the log does not hold")
        for rid, r in self.requests.items():
            lacking = sorted(r["targets"] - r["commanded"])
            if lacking:
                raise Failed(f"entry {r['index']}: M8: request {rid}: no command was issued "
                             f"for {lacking}")


# --------------------------------------------------------------------------------------------
# The two inputs: a data dir (§1-§5), or a tlog-tiles export (§6).

def verify_dir(data_dir, args, trusted):
    ledger_dir = os.path.join(data_dir, "ledger")
    if not os.path.isdir(ledger_dir):
        raise Failed(f"{ledger_dir}: no ledger directory")
    report, warnings = [], []
    records, complete = read_ledger(ledger_dir, report, warnings)
    leaves = [r.leaf for r in records]

    cp_path = os.path.join(ledger_dir, "checkpoint")
    if not os.path.exists(cp_path):
        if complete:
            raise Failed(f"no checkpoint over a log of {complete} entries: nothing signed vouches "
                         f"for them")
        cp = None
        report.append("empty log (no checkpoint, no entries)")
    else:
        cp = parse_checkpoint(open(cp_path, "rb").read(), trusted, "checkpoint")
        origin, size, root = cp
        if size > complete:
            raise Failed(f"checkpoint covers {size} entries, but the complete batches hold "
                         f"{complete}")
        if size and records[size - 1].entry.batch_remaining != 0:
            raise Failed(f"checkpoint of size {size} ends inside a batch")
        if merkle_root(leaves[:size]) != root:
            raise Failed(f"checkpoint root does not match the entries' Merkle root at size {size}")

    sem = Semantics(trusted, args.accept_unauthenticated, args.allow_unknown_fields)
    for i in range(complete):
        sem.check(i, records[i].entry, records[i].where(i))
    sem.finish()
    if cp is not None and complete and cp[0] != sem.origin:
        raise Failed(f"checkpoint origin {cp[0]!r} is not the log's origin {sem.origin!r}")

    if len(records) > complete:
        extra = records[complete:]
        size = sum(8 + len(r.payload) for r in extra)
        report.append(f"incomplete batch: entries {complete}..{len(records) - 1} ({len(extra)} "
                      f"entries, {size} bytes at {extra[0].seg} offset {extra[0].offset}), an "
                      f"unacknowledged write: not part of the log, cut by lethed")
    summary = [f"origin      {sem.origin or '-'}",
               f"entries     {complete} (hash chain intact, batches whole)"]
    if cp is not None:
        summary.append(f"checkpoint  size {cp[1]}, signature verified, Merkle root matches")
        past = records[cp[1]:complete]
        if past:
            summary.append(f"unsigned    {len(past)} entries ({sum(8 + len(r.payload) for r in past)}"
                           f" bytes) past the checkpoint: checked, but no signature covers them")
    return summary + semantic_summary(sem) + report + [f"warning: {w}" for w in warnings]


def semantic_summary(sem):
    c = sem.counts
    out = [f"policies    {c['policies']} activated, each hash recomputed",
           f"requests    {c['requests']} ({c['completed']} completed: {c['done']} COMPLETED, "
           f"{c['gaps']} DONE_WITH_GAPS, {c['failed']} FAILED), plans match their policy",
           f"receipts    {c['receipts']}, every signature verified against enrolled agent keys",
           f"consent     {c['consent']} changes"]
    if c["unauthenticated"]:
        out.append(f"accepted    {c['unauthenticated']} unauthenticated entries "
                   f"(--accept-unauthenticated)")
    if c["unknown_fields"]:
        out.append(f"accepted    {c['unknown_fields']} entries with unknown fields "
                   f"(--allow-unknown-fields)")
    return out + sem.who


def tile_path(level, n, width):
    """C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], N in 3-digit elements, all but the last 'x'."""
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    parts = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    path = "/".join(["x" + p for p in parts[:-1]] + [parts[-1]])
    return f"tile/{level}/{path}" + (f".p/{width}" if width < 256 else "")


def verify_bundle(bundle, args, trusted):
    """§6: the checkpoint, every tile and entry bundle, then every entry as in §7."""
    def read(rel):
        try:
            return open(os.path.join(bundle, rel), "rb").read()
        except OSError:
            raise Failed(f"{rel}: missing from the export")

    origin, size, root = parse_checkpoint(read("checkpoint"), trusted, "checkpoint")
    # Level 0 from the entry bundles, then every level from the one below it.
    payloads = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        data, pos = read(tile_path("entries", n, width)), 0
        for _ in range(width):
            length = struct.unpack(">H", data[pos:pos + 2])[0] if pos + 2 <= len(data) else -1
            if length < 0 or pos + 2 + length > len(data):
                raise Failed(f"entry bundle {n}: fewer than {width} entries")
            payloads.append(data[pos + 2:pos + 2 + length])
            pos += 2 + length
        if pos != len(data):
            raise Failed(f"entry bundle {n}: more than {width} entries")
    hashes, level = [leaf_hash(p) for p in payloads], 0
    while True:
        for n in range((len(hashes) + 255) // 256):
            chunk = hashes[256 * n:256 * n + 256]
            if read(tile_path(level, n, len(chunk))) != b"".join(chunk):
                raise Failed(f"{tile_path(level, n, len(chunk))}: does not match the level "
                             f"below it (or the entries)")
        if len(hashes) < 256:
            break
        hashes = [merkle_root(hashes[256 * n:256 * n + 256]) for n in range(len(hashes) // 256)]
        level += 1
    if merkle_root([leaf_hash(p) for p in payloads]) != root:
        raise Failed("the entries' Merkle root does not match the checkpoint")

    sem = Semantics(trusted, args.accept_unauthenticated, args.allow_unknown_fields)
    prev, pending = b"\x00" * 32, 0
    for i, p in enumerate(payloads):
        w = f"entry {i} (export)"
        try:
            e = pb.LedgerEntry.FromString(p)
        except DecodeError as err:
            raise Failed(f"{w}: not a lethe.v1.LedgerEntry ({err})")
        if e.seq != i or e.prev_hash != prev:
            raise Failed(f"{w}: wrong seq or broken chain")
        if pending and e.batch_remaining != pending - 1:
            raise Failed(f"{w}: broken batch")
        pending, prev = e.batch_remaining, leaf_hash(p)
        sem.check(i, e, w)
    if pending:
        raise Failed("the export's checkpoint ends inside a batch")
    sem.finish()
    if size and origin != sem.origin:
        raise Failed(f"checkpoint origin {origin!r} is not the log's origin {sem.origin!r}")
    check_agents_json(os.path.join(bundle, "lethe", "agents.json"), sem)
    return [f"origin      {origin}", f"entries     {size} (tiles, entry bundles and chain verified)",
            f"checkpoint  size {size}, signature verified, Merkle root matches"] + \
        semantic_summary(sem)


def check_agents_json(path, sem):
    """§6: agents.json is checked against the AgentEnrolled entries. The document gives its
    contents (domain, key id, raw key, PEM, entry index) but not its field names: this looks
    for each enrolled key's domain and key id among the strings of the file."""
    try:
        doc = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise Failed(f"lethe/agents.json: {e}")
    strings = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            strings.add(v)
    walk(doc)
    for (domain, kid) in sem.keys:
        if domain not in strings or kid not in strings:
            raise Failed(f"lethe/agents.json: lacks enrolled key {kid} of domain {domain}")


def main():
    ap = argparse.ArgumentParser(description="Verify a Lethe ledger from ledger/FORMAT.md alone.")
    ap.add_argument("--dir", help="lethed's data dir (the ledger is DIR/ledger)")
    ap.add_argument("--bundle", help="a `lethectl ledger export` directory (C2SP tlog-tiles)")
    ap.add_argument("--public-key", required=True, help="lethed's public key file")
    ap.add_argument("--accept-unauthenticated", action="store_true",
                    help="accept entries made through `lethed --insecure`")
    ap.add_argument("--allow-unknown-fields", action="store_true",
                    help="accept entries with protobuf fields proto/lethe/v1 does not define")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--proto-dir", default=os.path.join(here, "..", "..", "proto"),
                    help="the directory holding lethe/v1/*.proto (default: the repo's proto/)")
    args = ap.parse_args()
    if (args.dir is None) == (args.bundle is None):
        ap.error("give exactly one of --dir and --bundle")
    try:
        if args.dir is not None and not os.path.isdir(args.dir):
            raise UsageError(f"--dir {args.dir}: not a directory")
        load_protos(os.path.normpath(args.proto_dir))
        trusted = load_public_key(args.public_key)
        if args.bundle is not None:
            lines = verify_bundle(args.bundle, args, trusted)
        else:
            lines = verify_dir(args.dir, args, trusted)
    except UsageError as e:
        print(f"lethe_verify.py: {e}", file=sys.stderr)
        return 2
    except Failed as e:
        print(f"FAILED: {e}")
        return 1
    print(f"OK ({args.bundle or os.path.join(args.dir, 'ledger')})")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
