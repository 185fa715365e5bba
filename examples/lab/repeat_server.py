"""
Step 8 (lab task 8): several replies to one message. A "say" may ask for
its text back several times: {"type": "say", "text": "hi", "repeat": 4}
gets four echoes, numbered {"n": 1, "of": 4} to {"n": 4, "of": 4}, so the
client knows how many to wait for and that none was lost.

Everything else is step 7's server: this is the whole of echolab's echo
mode, and `echolab-check HOST:PORT --mode echo` passes against it.

    python repeat_server.py 9090
"""

from framed_server import EchoSession, run

MAX_REPEAT = 100  # one message may not make the server send without end


class RepeatSession(EchoSession):
    def say(self, message):
        repeat = message.get("repeat", 1)
        if not 1 <= repeat <= MAX_REPEAT:
            # Well formed, but out of range: bad_value, the connection stays.
            self.refuse("bad_value", f"repeat must be from 1 to {MAX_REPEAT}")
            return
        if repeat == 1:  # one echo, without n and of
            self.conn.send_message({"type": "echo", "text": message["text"]})
            return
        for n in range(1, repeat + 1):
            # Each echo is a frame of its own: the client reads them one by
            # one with recv_message, however TCP groups them.
            reply = {"type": "echo", "text": message["text"], "n": n, "of": repeat}
            self.conn.send_message(reply)


if __name__ == "__main__":
    run(RepeatSession)
