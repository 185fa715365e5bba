"""
Step 8 (lab task 8): one message, several replies. Type a line ending in
" *N" to ask for N echoes of it:

    python repeat_client.py 127.0.0.1 9090
    > hello *3
    1/3 hello
    2/3 hello
    3/3 hello
"""

import re

from framed_client import main

REPEAT = re.compile(r"(.*) \*(\d+)")


def say_repeated(sock, line):
    match = REPEAT.fullmatch(line)
    text, repeat = (match[1], int(match[2])) if match else (line, 1)
    sock.send_message({"type": "say", "text": text, "repeat": repeat})
    # Read replies until the last of the echoes: an echo without "n" is
    # the only one; otherwise the last is the one whose "n" is its "of".
    while True:
        reply = sock.recv_message()
        if reply["type"] != "echo":
            print("Refused:", reply["text"])
            return
        if "n" not in reply:
            print(reply["text"])
            return
        print(f"{reply['n']}/{reply['of']} {reply['text']}")
        if reply["n"] == reply["of"]:
            return


if __name__ == "__main__":
    main(say_repeated)
