#!/usr/bin/env python3
"""A cairn protocol client written only from docs/protocol.md, in Python with
the standard library alone (its own MessagePack), to show that another
language can use backend-fs through every operation, pipelined, and across a
reopen. Usage: client.py NODE BACKEND_FS_JS ARCHIVE_DIR. Prints OK at the end."""
import struct
import subprocess
import sys


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        if -32 <= v < 0:
            return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(v)) + bytes(v)
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdd" + struct.pack(">I", len(v))
        return head + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xdf" + struct.pack(">I", len(v))
        return head + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


def unpack(b, i=0):
    t = b[i]
    if t < 0x80:
        return t, i + 1
    if t >= 0xE0:
        return t - 256, i + 1
    if 0x80 <= t <= 0x8F:
        return unpack_map(b, i + 1, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return unpack_array(b, i + 1, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if t == 0xC0:
        return None, i + 1
    if t == 0xC2:
        return False, i + 1
    if t == 0xC3:
        return True, i + 1
    sizes = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
    if t in sizes:
        s = sizes[t]
        n = int.from_bytes(b[i + 1:i + 1 + s], "big")
        raw = b[i + 1 + s:i + 1 + s + n]
        return (bytes(raw) if t <= 0xC6 else raw.decode()), i + 1 + s + n
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if t in ints:
        s = struct.calcsize(ints[t])
        return struct.unpack(ints[t], b[i + 1:i + 1 + s])[0], i + 1 + s
    if t in (0xDC, 0xDD):
        s = 2 if t == 0xDC else 4
        return unpack_array(b, i + 1 + s, int.from_bytes(b[i + 1:i + 1 + s], "big"))
    if t in (0xDE, 0xDF):
        s = 2 if t == 0xDE else 4
        return unpack_map(b, i + 1 + s, int.from_bytes(b[i + 1:i + 1 + s], "big"))
    raise ValueError("type %x" % t)


def unpack_array(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


def unpack_map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i)
        v, i = unpack(b, i)
        out[k] = v
    return out, i


class Client:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id = 1
        self.answers = {}
        hello = self.read()
        assert hello[0] == "hello" and hello[1]["protocol"] == 1, hello
        self.info = hello[1]

    def read(self):
        while True:
            head = self.p.stdout.read(4)
            assert len(head) == 4, "backend closed its output"
            body = self.p.stdout.read(struct.unpack(">I", head)[0])
            msg, end = unpack(body)
            assert end == len(body)
            if msg[0] != "log":
                return msg

    def send(self, op, *args):
        rid = self.next_id
        self.next_id += 1
        body = pack([rid, op] + list(args))
        self.p.stdin.write(struct.pack(">I", len(body)) + body)
        return rid

    def wait(self, rid):
        self.p.stdin.flush()
        while rid not in self.answers:
            msg = self.read()
            self.answers[msg[0]] = msg
        msg = self.answers.pop(rid)
        if msg[1] != 0:
            raise RuntimeError(msg[2]["code"])
        return msg[2]

    def call(self, op, *args):
        return self.wait(self.send(op, *args))

    def close(self):
        assert self.call("close") is None
        assert self.p.wait(10) == 0


def expect_error(client, code, op, *args):
    try:
        client.call(op, *args)
    except RuntimeError as e:
        assert str(e) == code, (str(e), code)
        return
    raise AssertionError("%s did not fail" % op)


def main():
    node, script, archive = sys.argv[1:4]
    c = Client([node, script, "fs", archive])
    assert c.info["blockSize"] >= 65536 and c.info["writable"] is True
    # pipelined: 50 puts and gets sent before reading any answer
    ids = []
    for n in range(50):
        ids.append(c.send("put", "blk%03d" % n, bytes([n]) * (1000 + n)))
        ids.append(c.send("get", "blk%03d" % n))
    for n in range(50):
        assert c.wait(ids[2 * n]) is None
        assert c.wait(ids[2 * n + 1]) == bytes([n]) * (1000 + n)
    assert c.call("exists", "blk001") is True
    assert c.call("existsMany", ["blk002", "nope", "blk003"]) == [True, False, True]
    assert c.call("get", "nope") is None
    assert c.call("remove", "blk049") is True
    assert c.call("remove", "blk049") is False
    keys, cursor = [], None
    while True:
        page, cursor = c.call("listBlocks", cursor, 7)
        keys += page
        if cursor is None:
            break
    assert sorted(keys) == ["blk%03d" % n for n in range(49)], keys
    assert c.call("setTag", "home@host", b"tag-value") is None
    assert c.call("getTag", "home@host") == b"tag-value"
    assert c.call("listTags") == ["home@host"]
    assert c.call("setTag", "gone", b"") is None
    assert c.call("removeTag", "gone") is True
    assert c.call("lockTag", "home@host", "python", 60) is True
    assert c.call("lockTag", "home@host", "other", 60) is False
    assert c.call("tagLocked", "home@host") == "python"
    expect_error(c, "conflict", "unlockTag", "home@host", "other")
    assert c.call("unlockTag", "home@host", "python") is None
    assert c.call("tagLocked", "home@host") is None
    stats = c.call("stats")
    assert stats["blocks"] == 49, stats
    assert "info" in c.call("admin", "help", [])["text"]
    expect_error(c, "badRequest", "get", "../x")
    expect_error(c, "badRequest", "nosuchop")
    expect_error(c, "tooLarge", "put", "big", b"\0" * (c.info["blockSize"] + 1))
    assert c.call("flush") is None
    c.close()
    # reopen: everything flushed is still there
    c = Client([node, script, "fs", archive])
    assert c.call("get", "blk010") == bytes([10]) * 1010
    assert c.call("exists", "blk049") is False
    assert c.call("getTag", "home@host") == b"tag-value"
    c.close()
    print("OK")


if __name__ == "__main__":
    main()
