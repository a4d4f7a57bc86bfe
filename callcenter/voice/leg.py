"""One side of a call: its SIP dialog and its RTP port.

A caller's leg is answered here (UAS): the 200 carries our SDP answer and is
sent again on T1, 2*T1, ... up to T2 until the ACK comes (RFC 3261 13.3.1.4),
and a call whose ACK never comes is hung up after 64*T1. An agent's leg is
rung from here (UAC): the INVITE with our SDP offer goes to the phone's
registered address, a CANCEL stops the ringing (9.1), and the 2xx is
acknowledged end to end (13.2.2.4); a customer's leg is rung the same way
through a trunk, and sent again with credentials when the trunk challenges
it (22.2). Either leg hangs up with a BYE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from callcenter.media.port import PortAllocator, RtpPort
from callcenter.sip import sdp, session_timer
from callcenter.sip.endpoint import Endpoint, Peer, ServerRequest
from callcenter.sip.message import ParseError, Request, Response, new_call_id, new_tag
from callcenter.sip.uri import parse_uri
from callcenter.voice.dialog import Dialog

log = logging.getLogger(__name__)

#: The codecs we speak, in order of preference.
CODECS = (sdp.PCMU, sdp.PCMA)


class NoCommonCodec(ValueError):
    """The offer has no audio stream we can take (answered with 488)."""


def chosen_codecs(
    offer: sdp.SessionDescription,
) -> tuple[sdp.Media, sdp.Codec, sdp.Codec | None]:
    """The offer's first audio stream with a codec of ours, that codec and telephone-event."""
    for media in offer.media:
        if media.kind != "audio" or media.rejected or not media.is_rtp:
            continue
        for codec in media.codecs:
            if any(codec.same_format(ours) for ours in CODECS):
                return media, codec, media.event_codec
    raise NoCommonCodec("no G.711 audio in the offer")


def _remote(offer: sdp.SessionDescription, media: sdp.Media) -> tuple[str, int] | None:
    connection = offer.connection_of(media)
    if connection is None or connection.address in ("0.0.0.0", "::"):  # noqa: S104 - on hold
        return None
    return connection.address, media.port


class Leg:
    """A dialog and its media; see the module docstring."""

    def __init__(self, endpoint: Endpoint, port: RtpPort, address: str) -> None:
        self.endpoint = endpoint
        self.port = port
        self.address = address
        self.dialog: Dialog | None = None
        self.ended = False
        self._acked = asyncio.get_running_loop().create_future()
        self._retransmit: asyncio.Task[None] | None = None
        self._invite: Request | None = None
        self._peer: Peer | None = None
        self._final: asyncio.Future[Response] | None = None
        self._cancelled = False
        self._provisional: Callable[[Response], None] | None = None
        #: Our SDP's o= line stays the same over the dialog, its version goes up (RFC 3264 8).
        self.sdp_session = str(int(time.time()))
        self.sdp_version = 0
        #: Session timer (RFC 4028) of a call we answered: (interval we want, our
        #: Min-SE), the interval agreed (None: no timer) and when it was last refreshed.
        self.session_policy: tuple[int, int] | None = None
        self.session_interval: int | None = None
        self.refreshed_at = asyncio.get_running_loop().time()

    # -- the caller's side (UAS) ------------------------------------------------------

    @classmethod
    async def answer(
        cls,
        endpoint: Endpoint,
        server: ServerRequest,
        allocator: PortAllocator,
        address: str,
        on_no_ack: Callable[[Leg], None],
        *,
        session: tuple[int, int] | None = None,
    ) -> Leg | None:
        """Answer the INVITE in ``server`` with 200 and our SDP; raises NoCommonCodec,
        or ParseError (a malformed session timer field, checked before anything opens).

        ``session`` is (interval wanted, Min-SE) for session timers; the caller
        must have refused, with 422, an INVITE whose interval is too small.
        ``None`` if a CANCEL ended the INVITE (with 487) while the port was opening.
        """
        timer = (
            session_timer.negotiate(server.request, wanted=session[0], min_se=session[1])
            if session is not None
            else session_timer.Negotiated()
        )
        offer = sdp.parse(server.request.body)
        media, codec, events = chosen_codecs(offer)
        # The dialog first: a request it refuses (ParseError) must not leave a port open.
        dialog = Dialog.as_uas(server.request, server.tag, server.peer)
        port = await RtpPort.open(
            address,
            allocator,
            codec,
            telephone_event=events,
            ptime=media.ptime if media.ptime in (10, 20, 30) else 20,
            remote=_remote(offer, media),
        )
        if server.answered:
            port.close()
            return None
        leg = cls(endpoint, port, address)
        leg.session_policy, leg.session_interval = session, timer.interval
        supported = [c for c in (codec, sdp.TELEPHONE_EVENT) if c is not None]
        answer = sdp.answer(
            offer, supported, address, port.number, session_id=leg.sdp_session, version=0
        )
        leg.dialog = dialog
        response = server.reply(
            200,
            headers=(
                ("Contact", endpoint.contact("callcenter", server.peer.transport)),
                *timer.headers,
                ("Content-Type", "application/sdp"),
            ),
            body=answer.encode(),
        )
        leg._retransmit = asyncio.create_task(leg._resend_until_acked(response, server, on_no_ack))
        return leg

    async def _resend_until_acked(
        self, response: Response, server: ServerRequest, on_no_ack: Callable[[Leg], None]
    ) -> None:
        timers = self.endpoint.timers
        interval, waited = timers.t1, 0.0
        while waited < timers.timeout:
            try:
                await asyncio.wait_for(asyncio.shield(self._acked), interval)
                return
            except TimeoutError:
                waited += interval
                if server.peer.transport == "udp":
                    if server.terminated:
                        break  # timer L ended the transaction: no one is listening any more
                    server.respond(response)
                interval = min(2 * interval, timers.t2)
        log.info("no ACK for the 200 to %s: hanging up", server.request.call_id)
        on_no_ack(self)

    def reoffer(self, body: bytes) -> tuple[bytes, bool, tuple[str, int] | None]:
        """Our answer to a re-INVITE's offer, whether it holds the call, and its media address.

        The codec stays the one the call started with (a change of codec in
        mid-call is refused with NoCommonCodec).
        """
        offer = sdp.parse(body)
        media, codec, _ = chosen_codecs(offer)
        if not codec.same_format(self.port.codec):
            raise NoCommonCodec("the call keeps its codec")
        held = offer.on_hold(media)
        self.sdp_version += 1
        answer = sdp.answer(
            offer,
            [self.port.codec, sdp.TELEPHONE_EVENT],
            self.address,
            self.port.number,
            session_id=self.sdp_session,
            version=self.sdp_version,
        )
        return answer.encode(), held, _remote(offer, media)

    def receive(self, server: ServerRequest) -> str:
        """Answer a request within this leg's dialog; return what it means for the call.

        ``"bye"``: the other side hung up; ``"hold"`` or ``"resume"``: a
        re-INVITE, answered with our SDP (RFC 3264 8.4), changed the media;
        ``""``: nothing for the call to do (answered, or refused: 500 for a
        CSeq out of order, 12.2.2; 488 for an offer we cannot take).
        """
        request = server.request
        assert self.dialog is not None
        if not self.dialog.accepts(request):
            server.reply(500, "CSeq out of order")
            return ""
        if request.method == "BYE":
            server.reply(200)
            self.hung_up_by_peer()
            return "bye"
        if request.method == "REFER":
            # Only an agent's phone transfers its call (the call layer takes that REFER).
            server.reply(403, "No transfer from this leg")
            return ""
        if request.method not in ("INVITE", "UPDATE"):
            server.reply(200)
            return ""
        # A re-INVITE or an UPDATE refreshes the session (RFC 4028 section 9).
        timer = session_timer.Negotiated()
        if self.session_policy is not None:
            wanted, min_se = self.session_policy
            try:
                timer = session_timer.negotiate(request, wanted=wanted, min_se=min_se)
            except ParseError as error:
                server.reply(400, error.reason)
                return ""
            if timer.too_small is not None:
                server.reply(422, "Session Interval Too Small", headers=(("Min-SE", str(min_se)),))
                return ""
        if request.method == "UPDATE" and not request.body:
            server.reply(200, headers=timer.headers)
            self._refreshed(timer)
            return ""
        try:
            answer, held, remote = self.reoffer(request.body)
        except (sdp.SdpError, NoCommonCodec):
            server.reply(488, "Not Acceptable Here")
            return ""
        server.reply(
            200,
            headers=(
                ("Contact", self.endpoint.contact("callcenter", server.peer.transport)),
                *timer.headers,
                ("Content-Type", "application/sdp"),
            ),
            body=answer,
        )
        self._refreshed(timer)
        if remote is not None:
            self.port.set_remote(remote)
        return "hold" if held else "resume"

    def _refreshed(self, timer: session_timer.Negotiated) -> None:
        if self.session_policy is not None:
            self.session_interval = timer.interval
            self.refreshed_at = asyncio.get_running_loop().time()

    def acknowledged(self) -> None:
        if not self._acked.done():
            self._acked.set_result(None)

    # -- an agent's side (UAC) -------------------------------------------------------

    @classmethod
    async def ring(
        cls,
        endpoint: Endpoint,
        allocator: PortAllocator,
        address: str,
        codec: sdp.Codec,
        *,
        peer: Peer,
        target: str,
        caller: str,
        on_ringing: Callable[[], None] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> tuple[Leg, asyncio.Future[Response]]:
        """Send the INVITE; returns the leg and the future of its final response.

        Only the caller's codec is offered, so the two legs need no transcoding.
        ``headers`` are added to the INVITE (P-Asserted-Identity toward a trunk).
        """
        port = await RtpPort.open(address, allocator, codec, telephone_event=sdp.TELEPHONE_EVENT)
        leg = cls(endpoint, port, address)
        offer = sdp.offer([codec, sdp.TELEPHONE_EVENT], address, port.number)
        uri = parse_uri(target)
        invite = Request(
            "INVITE",
            uri,
            (
                ("Via", endpoint.via(peer.transport)),
                ("Max-Forwards", "70"),
                ("From", f"{caller};tag={new_tag()}"),
                ("To", f"<{target}>"),
                ("Call-ID", new_call_id()),
                ("CSeq", "1 INVITE"),
                ("Contact", endpoint.contact("callcenter", peer.transport)),
                *headers,
                ("Content-Type", "application/sdp"),
            ),
            offer.encode(),
        )
        leg._invite, leg._peer = invite, peer

        def provisional(response: Response) -> None:
            if response.status == 180 and on_ringing is not None:
                on_ringing()

        leg._provisional = provisional
        leg._final = endpoint.request(invite, peer, provisional)
        return leg, leg._final

    def authorize(self, header: str, credentials: str) -> asyncio.Future[Response]:
        """Send the INVITE again with ``credentials`` in ``header``, after a 401 or 407.

        RFC 3261 22.2 and 8.1.3.5: the same Call-ID, From (and tag), To and
        body, CSeq one higher and a new branch. Returns the future of the new
        final response; CANCEL, ACK and the dialog then follow this INVITE.
        """
        assert self._invite is not None and self._peer is not None
        invite = self._invite
        self._invite = (
            invite.with_header("Via", self.endpoint.via(self._peer.transport))
            .with_header("CSeq", f"{invite.cseq.number + 1} INVITE")
            .without_header("Authorization")
            .without_header("Proxy-Authorization")
            .with_header(header, credentials)
        )
        self._final = self.endpoint.request(self._invite, self._peer, self._provisional)
        return self._final

    @property
    def invite(self) -> Request | None:
        """The INVITE we sent last (ringing a phone), as sent."""
        return self._invite

    def answered(self, response: Response) -> None:
        """The phone answered: make the dialog, ACK the 2xx, aim the media."""
        assert self._invite is not None and self._peer is not None
        self.dialog = Dialog.as_uac(self._invite, response, self._peer)
        self.send_ack(response)
        try:
            answer = sdp.parse(response.body)
        except sdp.SdpError:
            log.info("the agent's answer has no usable SDP")
            return
        for media in answer.media:
            if media.kind == "audio" and not media.rejected:
                remote = _remote(answer, media)
                if remote is not None:
                    self.port.set_remote(remote)
                break

    def send_ack(self, response: Response) -> None:
        """The ACK for a 2xx to our INVITE (13.2.2.4), sent again for a retransmitted 2xx."""
        if self.dialog is None or self._invite is None:
            return
        ack = self.dialog.request(
            "ACK", self.endpoint.via(self.dialog.peer.transport), cseq=self._invite.cseq.number
        )
        self.endpoint.send(ack, self.dialog.peer)

    def cancel(self) -> None:
        """Stop the ringing (9.1): same Request-URI, Call-ID, From, To, CSeq number, branch."""
        if self._invite is None or self._peer is None or self.dialog is not None:
            return
        if self._cancelled or (self._final is not None and self._final.done()):
            return
        # Once: the call ending and the router's withdrawal may both ask for it.
        self._cancelled = True
        invite = self._invite
        fields = tuple(
            (n, v)
            for n, v in invite.headers
            if n.lower() in ("via", "from", "to", "call-id", "max-forwards", "route")
        )
        cancel = Request("CANCEL", invite.uri, (*fields, ("CSeq", f"{invite.cseq.number} CANCEL")))
        self.endpoint.request(cancel, self._peer)

    # -- both -------------------------------------------------------------------------

    async def hang_up(self) -> None:
        """BYE, if the dialog is up and this side has not ended already."""
        if self.ended:
            return
        self.ended = True
        if self._retransmit is not None:
            if not self._retransmit.done():
                # No BYE before the ACK of our 200 (RFC 3261 15): wait for it, or
                # for the retransmissions to give up.
                await asyncio.wait({self._retransmit}, timeout=self.endpoint.timers.timeout)
            self._retransmit.cancel()
        if self.dialog is None:
            self.cancel()
            return
        bye = self.dialog.request("BYE", self.endpoint.via(self.dialog.peer.transport))
        try:
            await asyncio.wait_for(self.endpoint.request(bye, self.dialog.peer), 40)
        except TimeoutError:
            log.info("no answer to BYE for %s", self.dialog.call_id)

    def hung_up_by_peer(self) -> None:
        self.ended = True
        if self._retransmit is not None:
            self._retransmit.cancel()

    def close(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
        self.port.close()


def ack_again(response: Response, legs: Iterable[Leg | None]) -> None:
    """A 2xx to one of ``legs``' INVITEs came again, our ACK lost: ACK it again
    (RFC 3261 13.2.2.4). Anything else is no business of these legs."""
    if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
        return
    for leg in legs:
        if leg is not None and leg.dialog is not None and leg.dialog.call_id == response.call_id:
            leg.send_ack(response)
