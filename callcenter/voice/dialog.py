"""SIP dialogs (RFC 3261 12): the state two user agents share for one call.

A dialog is made from the INVITE and its 2xx, on our side as UAS (a caller
dialled in) or as UAC (we rang an agent's phone). It builds the requests sent
within it (BYE, re-INVITE, ACK for 2xx) with the right tags, CSeq, Request-URI
and Route set (12.2.1.1, loose routing only), and recognises requests that
belong to it (12.2.2).

In-dialog requests go to ``peer``, the address the dialog's messages came
from, rather than to the remote Contact: behind NAT the Contact is often a
private address, while the source address is the one that answers (the
symmetric signalling that RFC 3581 and RFC 5626 rely on).
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sip.endpoint import Peer
from callcenter.sip.message import NameAddr, ParseError, Request, Response
from callcenter.sip.uri import parse_uri


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    #: Our and their name-addr as in From/To, without tags.
    local_uri: str
    remote_uri: str
    #: Where requests in the dialog are addressed (the remote Contact URI).
    remote_target: str
    #: Route header values for requests in the dialog, in order.
    route_set: tuple[str, ...]
    local_seq: int
    remote_seq: int | None
    peer: Peer

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, peer: Peer) -> Dialog:
        """12.1.1: our side of a dialog a caller's INVITE created."""
        contacts = invite.contacts
        if len(contacts) != 1:
            raise ParseError("INVITE needs exactly one Contact")
        sender = invite.from_addr
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=sender.tag or "",
            local_uri=_untagged(invite.to_addr),
            remote_uri=_untagged(sender),
            remote_target=str(contacts[0].uri),
            route_set=tuple(str(r) for r in invite.record_routes),
            local_seq=0,
            remote_seq=invite.cseq.number,
            peer=peer,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, peer: Peer) -> Dialog:
        """12.1.2: our side of the dialog a 2xx (or 1xx with a tag) to our INVITE created."""
        contacts = response.contacts
        if not contacts:
            raise ParseError("2xx to INVITE needs a Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_addr.tag or "",
            remote_tag=response.to_addr.tag or "",
            local_uri=_untagged(invite.from_addr),
            remote_uri=_untagged(invite.to_addr),
            remote_target=str(contacts[0].uri),
            route_set=tuple(str(r) for r in reversed(response.record_routes)),
            local_seq=invite.cseq.number,
            remote_seq=None,
            peer=peer,
        )

    def request(
        self,
        method: str,
        via: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request within the dialog (12.2.1.1); ACK passes the INVITE's CSeq number."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        fields: list[tuple[str, str]] = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        fields += [("Route", route) for route in self.route_set]
        fields += headers
        return Request(method, parse_uri(self.remote_target), tuple(fields), body)

    def accepts(self, request: Request) -> bool:
        """12.2.2: whether ``request`` belongs here; a CSeq going backwards does not (500)."""
        number = request.cseq.number
        if request.method != "ACK" and self.remote_seq is not None and number <= self.remote_seq:
            if request.method != "CANCEL":
                return False
        if request.method not in ("ACK", "CANCEL"):
            self.remote_seq = number
        return True

    @staticmethod
    def key_of(request: Request) -> tuple[str, str, str]:
        """The key a request names from the receiver's side: (Call-ID, To tag, From tag)."""
        return request.call_id, request.to_addr.tag or "", request.from_addr.tag or ""


def _untagged(address: NameAddr) -> str:
    params = tuple((n, v) for n, v in address.params if n.lower() != "tag")
    return str(NameAddr(address.uri, address.display_name, params))
