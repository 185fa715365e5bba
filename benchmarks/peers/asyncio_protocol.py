"""Echo-mode peer: asyncio Protocol (callbacks, no coroutines per message).

With --uvloop it runs on uvloop, the fast libuv event loop; that variant
is the default reference of run.py's ratios.  Reading pauses while the
transport's write buffer is over its high-water mark (backpressure).
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _echo  # noqa: E402


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        transport.write(_echo.frame(_echo.WELCOME))

    def data_received(self, data):
        buf = self.buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n > _echo.MAX_MESSAGE:
                out.append(_echo.frame(_echo.TOO_LARGE))
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            if len(buf) - pos - 4 < n:
                break
            frames, close = _echo.replies(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
            out.extend(_echo.frame(f) for f in frames)
            if close:
                self.transport.write(b"".join(out))
                self.transport.close()
                return
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def main(args):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, args.interface, args.port)
    _echo.announce(args.interface, server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = _echo.parse_args(__doc__, uvloop_flag=True)
    _echo.raise_fd_limit()
    if args.uvloop:
        import uvloop
        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
