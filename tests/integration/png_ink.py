#!/usr/bin/env python3
"""png_ink.py FILE.png RRGGBB [X Y W H]: the share of the pixels (of the crop, or all) that
have exactly colour RRGGBB. png_ink.py FILE.png RRGGBB groups: how many separate bands of rows
(apart by 20 rows or more) hold that colour, e.g. one per chart with bars. A small PNG decoder (8-bit RGB or RGBA, non-interlaced: what
Chromium's screenshots are) on the standard library only, for tests/integration/ops_report.sh."""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("not a PNG")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                sys.exit("unsupported PNG (depth %d, colour type %d)" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def main():
    w, h, bpp, rows = decode(sys.argv[1])
    want = bytes.fromhex(sys.argv[2])
    if len(sys.argv) == 4 and sys.argv[3] == "groups":
        groups, gap = 0, 20
        for line in rows:
            has = any(line[c * bpp:c * bpp + 3] == want for c in range(w))
            if has and gap >= 20:
                groups += 1
            gap = 0 if has else gap + 1
        print(groups)
        return
    x, y, cw, ch = (int(v) for v in sys.argv[3:7]) if len(sys.argv) >= 7 else (0, 0, w, h)
    x2, y2 = min(w, x + cw), min(h, y + ch)
    hit = total = 0
    for r in range(y, y2):
        line = rows[r]
        for c in range(x, x2):
            total += 1
            hit += line[c * bpp:c * bpp + 3] == want
    print("%.6f" % (hit / total if total else 0))


main()
