"""Echo-mode peer: asyncio streams (start_server, readexactly, drain).

The high-level asyncio API as its documentation teaches it: one coroutine
per connection.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _echo  # noqa: E402


async def serve(reader, writer):
    writer.write(_echo.frame(_echo.WELCOME))
    try:
        while True:
            n = int.from_bytes(await reader.readexactly(4), "big")
            if n > _echo.MAX_MESSAGE:
                writer.write(_echo.frame(_echo.TOO_LARGE))
                break
            frames, close = _echo.replies(await reader.readexactly(n))
            for f in frames:
                writer.write(_echo.frame(f))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(args):
    server = await asyncio.start_server(serve, args.interface, args.port)
    _echo.announce(args.interface, server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = _echo.parse_args(__doc__)
    _echo.raise_fd_limit()
    asyncio.run(main(args))
