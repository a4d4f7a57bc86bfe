"""One call leg's RTP endpoint: a UDP socket with latching, audio and digits in and out.

:class:`PortAllocator` hands out even port numbers from a range (RTP on the
even port, the odd one above left for RTCP, RFC 3550 section 11).
:class:`RtpPort` binds one of them for one leg with the codec the SDP
negotiated, and:

* receives: parses each datagram within a size limit, drops bad packets and
  payload types that were not negotiated (counting both), follows the
  source's statistics (RFC 3550 Appendix A), drops exact repeats, and hands
  audio to ``on_audio`` and digits to ``on_digit``: from RFC 4733 events
  when telephone-event was negotiated, otherwise by in-band detection;
* latches (symmetric RTP, RFC 4961): it sends to the SDP's address until
  packets arrive, then to the address they come from, so phones behind NAT
  are reached. Once latched, another source is taken only if it carries the
  same SSRC (a NAT rebinding) or the latched one has been silent for
  ``relatch_after`` seconds;
* sends: its own stream (random SSRC, sequence and timestamp origin) for
  generated audio and digits, and packets relayed by a bridge, renumbered
  into the same stream so the peer sees one consistent source.

RTCP is not spoken: the odd port is reserved but not bound.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import math
import secrets
import sys
from array import array
from collections.abc import Callable
from typing import Any, cast

from callcenter.media import dtmf, g711, inband, rtp
from callcenter.media.rtp import RtpPacket
from callcenter.sip.sdp import Codec, Direction

DEFAULT_FIRST_PORT = 20000
DEFAULT_LAST_PORT = 29999
#: Packet durations the port sends; G.711 phones all take 20 ms.
PTIMES = (10, 20, 30)
DEFAULT_PTIME = 20
CLOCK_RATE = 8000
#: Ports tried before giving up when others are taken by other programs.
DEFAULT_BIND_ATTEMPTS = 16
DEFAULT_RELATCH_AFTER = 1.0
#: A pause in what this port sends longer than this starts a new talkspurt:
#: the timestamp jumps by the pause (so the peer's playout stays in step
#: with real time) and the marker bit is set. Shorter pauses are taken as
#: scheduling jitter and the timestamps run on.
RESYNC_GAP = 0.060
#: Silence after an in-band digit, so the next one is heard as a new key
#: press (ITU-T Q.24 asks receivers to separate presses 40 ms apart).
INBAND_PAUSE_MS = 60

Address = tuple[str, int]
AudioCallback = Callable[[bytes, RtpPacket], None]
EventCallback = Callable[[RtpPacket], None]
DigitCallback = Callable[[str], None]

_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes], int]] = {
    "PCMU": (g711.ulaw_to_pcm, g711.pcm_to_ulaw, g711.ULAW_SILENCE),
    "PCMA": (g711.alaw_to_pcm, g711.pcm_to_alaw, g711.ALAW_SILENCE),
}


class PortsExhausted(RuntimeError):
    """No port of the range is free."""


class PortAllocator:
    """Even port numbers from ``first`` to ``last``, each handed out to one leg at a time.

    Ports come back with :meth:`release` and are reused last, so a late
    packet of an ended call does not reach the next one. The order starts at
    a random place in the range, for the same reason across restarts.
    """

    def __init__(self, first: int = DEFAULT_FIRST_PORT, last: int = DEFAULT_LAST_PORT) -> None:
        first += first % 2
        ports = collections.deque(range(first, last, 2))
        if not 0 < first <= last <= 0xFFFF or not ports:
            raise ValueError(f"no even RTP port with its RTCP port in {first}-{last}")
        ports.rotate(secrets.randbelow(len(ports)))
        self.first = first
        self.last = last
        self._free = ports
        self._in_use: set[int] = set()

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """A free even port; :class:`PortsExhausted` when there is none."""
        if not self._free:
            raise PortsExhausted(f"all RTP ports {self.first}-{self.last} are in use")
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing it twice is harmless."""
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)


def dtmf_tone(digit: str, duration_ms: int, *, volume: int = dtmf.DEFAULT_VOLUME) -> bytes:
    """A key press as 8 kHz 16-bit PCM: row and column tones, each ``volume`` dB under 0 dBm0."""
    dtmf.event_code(digit)  # validates the digit
    row = next(r for r, keys in enumerate(inband.KEYPAD) if digit.upper() in keys)
    column = inband.KEYPAD[row].index(digit.upper())
    amplitude = inband.DBM0_AMPLITUDE * 10 ** (-volume / 20)
    low = 2 * math.pi * inband.ROW_FREQUENCIES[row] / CLOCK_RATE
    high = 2 * math.pi * inband.COLUMN_FREQUENCIES[column] / CLOCK_RATE
    count = duration_ms * CLOCK_RATE // 1000
    samples = array(
        "h", (round(amplitude * (math.sin(low * n) + math.sin(high * n))) for n in range(count))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


class RtpPort(asyncio.DatagramProtocol):
    """The RTP socket of one call leg. Create it with :meth:`open`; :meth:`close` it at the end.

    Set ``on_audio`` to receive each audio payload (in this leg's codec)
    with its packet, ``on_digit`` for each key press (reported once), and
    ``on_event`` for each telephone-event packet as it comes (a bridge relays
    them). Callbacks run in the event loop and must not block. Only one
    writer may send on a port at a time (a player, a mixer or a bridge);
    switching between them is fine.

    The call layer checks ``loop.time() - last_received`` against its RTP
    inactivity timeout, sets ``direction`` from the SDP (nothing is sent
    when it does not send), and calls :meth:`set_remote` after a re-INVITE.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        telephone_event: Codec | None = None,
        ptime: int = DEFAULT_PTIME,
        remote: Address | None = None,
        detect_inband: bool = True,
        relatch_after: float = DEFAULT_RELATCH_AFTER,
        max_packet_size: int = rtp.MAX_PACKET_SIZE,
        dtmf_end_timeout: float = dtmf.DEFAULT_END_TIMEOUT,
    ) -> None:
        encoding = codec.name.upper()
        if encoding not in _CODECS or codec.clock_rate != CLOCK_RATE or codec.channels != 1:
            raise ValueError(f"{codec.name}/{codec.clock_rate} is not G.711 (PCMU or PCMA)")
        if ptime not in PTIMES:
            raise ValueError(f"ptime {ptime} ms is not one of {PTIMES}")
        self.codec = codec
        self.encoding = encoding
        self.decode, self.encode, silence = _CODECS[encoding]
        self.silence_code = bytes((silence,))
        self.payload_type = codec.payload_type
        self.event_payload_type = None if telephone_event is None else telephone_event.payload_type
        self.ptime = ptime
        self.frame_bytes = ptime * CLOCK_RATE // 1000
        self.relatch_after = relatch_after
        self.max_packet_size = max_packet_size
        self.direction = Direction.SENDRECV
        self.sdp_remote = remote
        #: Where packets go: the SDP's address, then the latched source.
        self.remote = remote
        self.latched = False
        self.sender = rtp.RtpSender(codec.payload_type)
        self.stats = rtp.RtpReceiverStats(CLOCK_RATE)
        self.on_audio: AudioCallback | None = None
        self.on_event: EventCallback | None = None
        self.on_digit: DigitCallback | None = None
        self.last_received = 0.0
        # Counters for the call's quality record and for tests.
        self.packets_received = 0
        self.packets_sent = 0
        self.bad_packets = 0
        self.unknown_payload = 0
        self.foreign_packets = 0
        self.duplicates = 0
        self.relatches = 0
        self.send_errors = 0
        self._dtmf = dtmf.DtmfReceiver(end_timeout=dtmf_end_timeout)
        self._inband = (
            inband.InbandDetector() if detect_inband and telephone_event is None else None
        )
        self._latched_ssrc: int | None = None
        self._outgoing = bytearray()
        # Wall time at which the media already sent has played out.
        self._due: float | None = None
        self._busy_until = 0.0
        self._digits: collections.deque[tuple[str, int, asyncio.Future[None]]] = collections.deque()
        self._digit_handles: list[asyncio.TimerHandle] = []
        self._poll_handle: asyncio.TimerHandle | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._allocator: PortAllocator | None = None
        self._number = 0
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()

    @classmethod
    async def open(
        cls,
        host: str,
        allocator: PortAllocator,
        codec: Codec,
        *,
        bind_attempts: int = DEFAULT_BIND_ATTEMPTS,
        **options: Any,
    ) -> RtpPort:
        """Bind a port from ``allocator`` on ``host``; ``options`` go to the constructor.

        A port another program holds is skipped (and goes back to the end of
        the range); :class:`PortsExhausted` after ``bind_attempts`` tries.
        """
        port = cls(codec, **options)
        loop = asyncio.get_running_loop()
        for _ in range(bind_attempts):
            number = allocator.allocate()
            try:
                await loop.create_datagram_endpoint(lambda: port, local_addr=(host, number))
            except OSError as exc:
                allocator.release(number)
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            port._allocator, port._number = allocator, number
            return port
        raise PortsExhausted(f"no free RTP port on {host} after {bind_attempts} tries")

    @property
    def number(self) -> int:
        """The local port number (what goes in the SDP's m= line)."""
        return self._number

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def set_remote(self, remote: Address | None) -> None:
        """A new address from the SDP (a re-INVITE): send there and latch afresh."""
        self.sdp_remote = self.remote = remote
        self.latched = False
        self._latched_ssrc = None

    # -- asyncio.DatagramProtocol ------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not a DatagramTransport subclass before Python 3.12, but one in all but name.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.last_received = self._loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._allocator is not None:
            self._allocator.release(self._number)
            self._allocator = None
        if not self._closed.done():
            self._closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier packets (port unreachable while a phone
        # is not yet listening): nothing to do but count them.
        self.send_errors += 1

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = self._loop.time()
        self.packets_received += 1
        try:
            packet = rtp.parse_packet(data, max_size=self.max_packet_size)
        except rtp.RtpError:
            self.bad_packets += 1
            return
        audio = packet.payload_type == self.payload_type
        if not audio and packet.payload_type != self.event_payload_type:
            self.unknown_payload += 1
            return
        if not self._accept_source((addr[0], addr[1]), packet.ssrc, now):
            self.foreign_packets += 1
            return
        self.last_received = now
        if self.stats.ssrc not in (None, packet.ssrc):
            self.stats = rtp.RtpReceiverStats(CLOCK_RATE)  # the peer started a new stream
        before = self.stats.duplicates
        self.stats.update(packet, now)
        if self.stats.duplicates != before:
            self.duplicates += 1
            return
        if not self.direction.receives:
            return
        if audio:
            self._receive_audio(packet)
        else:
            self._receive_event(packet, now)

    # -- receiving ---------------------------------------------------------

    def _accept_source(self, source: Address, ssrc: int, now: float) -> bool:
        if self.latched and source != self.remote:
            if ssrc != self._latched_ssrc and now - self.last_received < self.relatch_after:
                return False
            self.relatches += 1
        self.remote = source
        self.latched = True
        self._latched_ssrc = ssrc
        return True

    def _receive_audio(self, packet: RtpPacket) -> None:
        if self.on_audio is not None:
            self.on_audio(packet.payload, packet)
        if self._inband is not None and self.on_digit is not None:
            for digit in self._inband.feed(self.decode(packet.payload)):
                self._report(digit)

    def _receive_event(self, packet: RtpPacket, now: float) -> None:
        try:
            digits = self._dtmf.feed(packet, now)
        except dtmf.TelephoneEventError:
            self.bad_packets += 1
            return
        if self.on_event is not None:
            self.on_event(packet)
        # A key press whose end packets are all lost is reported when the
        # receiver's timeout runs out, so look again then.
        if self._poll_handle is not None:
            self._poll_handle.cancel()
        self._poll_handle = self._loop.call_later(self._dtmf.end_timeout, self._poll_digits)
        for digit in digits:
            self._report(digit)

    def _poll_digits(self) -> None:
        self._poll_handle = None
        for digit in self._dtmf.poll(self._loop.time()):
            self._report(digit)

    def _report(self, digit: str) -> None:
        if self.on_digit is not None:
            self.on_digit(digit)

    # -- sending -----------------------------------------------------------

    def _can_send(self, now: float) -> bool:
        return (
            not self.closed
            and self.remote is not None
            and self.direction.sends
            and now >= self._busy_until
        )

    def _resync(self, now: float) -> None:
        if self._due is None:
            self._due = now
        elif now - self._due > RESYNC_GAP:
            self.sender.skip(round((now - self._due) * CLOCK_RATE))
            self._due = now

    def _send(self, packet: RtpPacket) -> None:
        assert self._transport is not None and self.remote is not None
        self._transport.sendto(packet.to_bytes(), self.remote)
        self.packets_sent += 1

    def send_audio(self, payload: bytes, samples: int | None = None) -> None:
        """Send one packet of audio in this leg's codec, now (one byte a sample for G.711).

        Dropped while the port cannot send (closed, no address yet, a
        direction that does not send, a digit going out).
        """
        now = self._loop.time()
        if not self._can_send(now):
            return
        count = len(payload) if samples is None else samples
        self._resync(now)
        self._send(self.sender.frame(payload, count))
        assert self._due is not None
        self._due += count / CLOCK_RATE

    def write_audio(self, codes: bytes) -> None:
        """Queue audio in this leg's codec and send every whole ``ptime`` packet now.

        Generated audio comes in 20 ms frames off the media clock; this cuts
        it to the negotiated packet size. Call :meth:`flush_audio` when the
        audio ends.
        """
        self._outgoing += codes
        size = self.frame_bytes
        while len(self._outgoing) >= size:
            frame = bytes(self._outgoing[:size])
            del self._outgoing[:size]
            self.send_audio(frame)

    def flush_audio(self) -> None:
        """Send what :meth:`write_audio` holds back as a last, shorter packet."""
        if self._outgoing:
            frame = bytes(self._outgoing)
            self._outgoing.clear()
            self.send_audio(frame)

    def begin_talkspurt(self) -> None:
        """Mark the next packet sent as the first of a talkspurt (RFC 3551 section 4.1)."""
        self.sender.skip(0)

    def next_numbers(self) -> tuple[int, int]:
        """The sequence number and timestamp a relayed stream starts from on this leg.

        The timestamp has moved on by any pause since this port last sent.
        """
        self._resync(self._loop.time())
        return self.sender.sequence, self.sender.timestamp

    def send_packet(self, packet: RtpPacket, samples: int = 0) -> None:
        """Send a relayed packet already numbered from :meth:`next_numbers` on.

        The SSRC is replaced by this leg's, and the stream's next sequence
        number and timestamp move past the packet (``samples`` long), so
        generated audio that follows continues the same stream.
        """
        now = self._loop.time()
        if not self._can_send(now):
            return
        sender = self.sender
        if (packet.sequence - sender.sequence) % rtp.SEQUENCE_MOD < rtp.SEQUENCE_MOD // 2:
            sender.sequence = (packet.sequence + 1) % rtp.SEQUENCE_MOD
        end = (packet.timestamp + samples) % rtp.TIMESTAMP_MOD
        if (end - sender.timestamp) % rtp.TIMESTAMP_MOD < rtp.TIMESTAMP_MOD // 2:
            sender.timestamp = end
        self._due = now + samples / CLOCK_RATE
        self._send(dataclasses.replace(packet, ssrc=sender.ssrc))

    def send_digit(
        self, digit: str, *, duration_ms: int = dtmf.DEFAULT_DURATION_MS
    ) -> asyncio.Future[None]:
        """Send a key press; the future completes when its last packet has gone.

        With telephone-event negotiated it goes as RFC 4733 events, one
        packet every 20 ms (section 2.5.1.2) with the end sent three times;
        otherwise as in-band tones in this leg's codec. Key presses queue up
        behind each other; other audio is held back while one plays.
        ``ValueError`` for a character that is not a DTMF digit.
        """
        dtmf.event_code(digit)
        done: asyncio.Future[None] = self._loop.create_future()
        self._digits.append((digit, duration_ms, done))
        if len(self._digits) == 1:
            self._start_digit()
        return done

    def _start_digit(self) -> None:
        digit, duration_ms, done = self._digits[0]
        now = self._loop.time()
        self._resync(now)
        if self.event_payload_type is not None:
            sender = dtmf.DtmfSender(self.sender, payload_type=self.event_payload_type)
            packets = sender.packets(digit, duration_ms=duration_ms)
            interval = dtmf.DEFAULT_INTERVAL_MS / 1000
        else:
            tone = self.encode(dtmf_tone(digit, duration_ms))
            codes = tone + self.silence_code * (INBAND_PAUSE_MS * CLOCK_RATE // 1000)
            size = self.frame_bytes
            chunks = [codes[i : i + size] for i in range(0, len(codes), size)]
            packets = [self.sender.frame(chunk, len(chunk)) for chunk in chunks]
            interval = self.ptime / 1000
        # Deadlines from one origin, so the packets keep their spacing even
        # when the loop runs a callback late.
        for index, packet in enumerate(packets):
            handle = self._loop.call_at(now + index * interval, self._send_digit_packet, packet)
            self._digit_handles.append(handle)
        end = now + len(packets) * interval
        self._busy_until = self._due = end
        self._digit_handles.append(self._loop.call_at(end, self._finish_digit, done))

    def _send_digit_packet(self, packet: RtpPacket) -> None:
        if not self.closed and self.remote is not None and self.direction.sends:
            self._send(packet)

    def _finish_digit(self, done: asyncio.Future[None]) -> None:
        self._digit_handles.clear()
        self._digits.popleft()
        if not done.done():
            done.set_result(None)
        if self._digits:
            self._start_digit()

    def close(self) -> None:
        """Stop sending and receiving and give the port back; pending digits are cancelled."""
        for handle in self._digit_handles:
            handle.cancel()
        self._digit_handles.clear()
        for _, _, done in self._digits:
            done.cancel()
        self._digits.clear()
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        self.on_audio = self.on_event = None
        self.on_digit = None
        if self._transport is not None:
            self._transport.close()
        elif not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the socket is closed and the port is back in its range."""
        await asyncio.shield(self._closed)
