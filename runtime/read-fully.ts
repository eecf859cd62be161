// Reads `target.length` bytes at `position` (fewer only at the end of the file), in pieces under the
// ~2 GiB that one fs read takes. Shared by every reader of large files (safetensors, token files).
import type { FileHandle } from "node:fs/promises";

export const IO_PIECE_BYTES = 1 << 30;

export async function readFully(fh: FileHandle, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, Math.min(IO_PIECE_BYTES, target.length - done), position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
