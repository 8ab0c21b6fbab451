"""One sidecar connection on a blocking socket: whole frames written under a lock, closed when nobody needs it.

Several threads write to one connection (its reader answers ``ping``; handler threads and the event
loop thread send ``fly``, ``result`` and ``error`` frames), so each frame goes out in one ``sendall``
under a lock and frames never interleave. The socket is closed only when its reader has stopped and
every call it started has answered (the sidecar may half-close and still wait for its results):
the reader and each call hold a reference.
"""

from __future__ import annotations

import socket
import threading


class SocketLost(Exception):
    """The sidecar's socket went away while writing (told apart from a ConnectionError a handler raised)."""


class Connection:
    """A sidecar connection shared by its reader thread and the calls it started."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._write_lock = threading.Lock()
        self._refs_lock = threading.Lock()
        self._refs = 1  # the reader

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Writes one encoded frame.

        Args:
            data: A whole frame (header and body).
            timeout: Seconds to wait for another writer to finish; None waits as long as it takes.

        Raises:
            SocketLost: The socket is gone (from the OSError that said so).
            TimeoutError: ``timeout`` passed while another thread was writing.
        """
        if not self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("another frame is still being written")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise SocketLost(str(exc)) from exc
        finally:
            self._write_lock.release()

    def hold(self) -> None:
        """One more user (a call that will answer on this connection)."""
        with self._refs_lock:
            self._refs += 1

    def release(self) -> None:
        """One user less; the last one closes the socket."""
        with self._refs_lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.sock.close()

    def shut_down(self) -> None:
        """Ends both directions at once: the reader's ``recv`` returns and the peer sees the end of stream."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
