"""A live-stream reader that stops reading: the tests' slow client of GET /admin/stream.

    stalled_reader.py HOST PORT TOKEN

Connects with a small receive buffer, sends the request, prints "connected" once the response
head has arrived, then reads nothing until a line arrives on standard input. Then it reads the
stream for up to 20 seconds, until a `dropped` event has come and the stream has gone quiet for
three seconds, and prints one JSON object: the events read by name and the total the `dropped` events
reported.
"""
import json
import socket
import sys
import time

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sock.connect((host, port))
sock.sendall(f"GET /admin/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
received = b""
while b"\r\n\r\n" not in received:
    chunk = sock.recv(1024)
    if not chunk:
        sys.exit("the server closed the stream before its head")
    received += chunk
head, _, rest = received.partition(b"\r\n\r\n")
if not head.startswith(b"HTTP/1.1 200"):
    sys.exit("the server answered " + head.split(b"\r\n")[0].decode())
print("connected", flush=True)
if not sys.stdin.readline():
    # Standard input closed without a word: whoever started it is gone.
    sys.exit(0)

counts, dropped, buffer, name = {}, 0, rest, None
deadline = time.monotonic() + 20
sock.settimeout(1.0)
quiet = 0
while time.monotonic() < deadline:
    try:
        chunk = sock.recv(65536)
    except socket.timeout:
        # Three quiet seconds after the drop report: the server has sent what it had.
        quiet += 1
        if dropped and quiet >= 3:
            break
        continue
    quiet = 0
    if not chunk:
        break
    buffer += chunk
    # Chunked transfer framing lines are neither `event:` nor `data:` lines: the parse skips them.
    lines = buffer.split(b"\n")
    buffer = lines.pop()
    for line in lines:
        line = line.rstrip(b"\r")
        if line.startswith(b"event: "):
            name = line[7:].decode()
            counts[name] = counts.get(name, 0) + 1
        elif line.startswith(b"data: ") and name == "dropped":
            dropped += json.loads(line[6:])["dropped"]
print(json.dumps({"events": counts, "dropped": dropped}), flush=True)
