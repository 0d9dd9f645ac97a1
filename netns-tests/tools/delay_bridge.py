#!/usr/bin/env python3
"""delay_bridge.py - a two-port Ethernet bridge in user space that delays frames, for kernels
without sch_netem (tc netem), used by relay-quality-tests as its fallback.

    delay_bridge.py PORT_A PORT_B DELAY_FILE

Runs inside a namespace holding the two interfaces (up, no addresses). Every frame received on
PORT_A leaves PORT_B after the delay read from DELAY_FILE (seconds as text, e.g. "0.150";
re-read every 200 ms; missing = 0); frames from PORT_B leave PORT_A at once. So, like netem on
the uplink of the node behind PORT_A, it delays what that node sends. Order is kept (one FIFO
per direction). IPv4 UDP checksums are cleared (0 = none): veth leaves them to an offload that
a frame re-sent from user space does not get.
"""
import collections
import socket
import sys
import threading
import time

ETH_P_ALL = 3
PACKET_OUTGOING = 4


def open_port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    return s


class Delay:
    def __init__(self, path):
        self.path, self.value, self.read_at = path, 0.0, 0.0

    def get(self):
        now = time.monotonic()
        if now - self.read_at > 0.2:
            self.read_at = now
            try:
                with open(self.path) as f:
                    self.value = max(0.0, min(10.0, float(f.read().strip() or 0)))
            except (OSError, ValueError):
                self.value = 0.0
        return self.value


def clear_udp_checksum(frame):
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return frame
    ihl = (frame[14] & 0x0F) * 4
    off = 14 + ihl + 6
    if len(frame) < off + 2:
        return frame
    return frame[:off] + b"\x00\x00" + frame[off + 2:]


def pump(src, dst, delay):
    queue, cv = collections.deque(), threading.Condition()

    def sender():
        while True:
            with cv:
                while not queue:
                    cv.wait()
                due, frame = queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.send(frame)
            except OSError:
                pass

    threading.Thread(target=sender, daemon=True).start()
    while True:
        frame, addr = src.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:
            continue
        due = time.monotonic() + (delay.get() if delay else 0.0)
        with cv:
            queue.append((due, clear_udp_checksum(frame)))
            cv.notify()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    a, b = open_port(sys.argv[1]), open_port(sys.argv[2])
    delay = Delay(sys.argv[3])
    threading.Thread(target=pump, args=(b, a, None), daemon=True).start()
    print("delay bridge up", flush=True)
    pump(a, b, delay)


if __name__ == "__main__":
    main()
