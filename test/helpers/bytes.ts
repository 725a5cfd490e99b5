/** XORs one byte of `buf` in place (a corruption for negative tests); throws when out of range. */
export function flipByte(buf: Buffer, offset: number, mask = 0xff): void {
  if (offset < 0 || offset >= buf.length)
    throw new RangeError(`flipByte: offset ${offset} outside a ${buf.length}-byte buffer`);
  buf[offset] = buf[offset]! ^ mask;
}
