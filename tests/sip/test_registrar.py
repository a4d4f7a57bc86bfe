"""Registrar bindings (RFC 3261 10.3) without sockets."""

from __future__ import annotations

from callcenter.sip.registrar import ContactRequest, Registrar, RegistrarLimits

AOR = "sip:1001@callcenter"
PHONE = "sip:1001@192.168.1.20:5060"
SOFT = "sip:1001@10.0.0.7:5062;transport=tcp"
SRC = ("udp", "203.0.113.5", 40000)


def register(reg: Registrar, *contacts: ContactRequest, now: float = 0.0, **kw: object):
    args = {
        "wildcard": False,
        "header_expires": None,
        "call_id": "call-1",
        "cseq": 1,
        "source": SRC,
        "now": now,
    }
    args.update(kw)
    return reg.update(AOR, list(contacts), **args)  # type: ignore[arg-type]


def test_register_refresh_and_expire() -> None:
    reg = Registrar()
    done = register(reg, ContactRequest(PHONE), header_expires=600)
    assert done.status == 200
    assert [(b.contact, b.expires_in(0.0), b.source) for b in done.bindings] == [(PHONE, 600, SRC)]
    assert reg.reachable(AOR, 599.0)
    again = register(reg, ContactRequest(PHONE, 300), cseq=2, now=500.0)
    assert [b.expires_in(500.0) for b in again.bindings] == [300]
    assert reg.next_expiry() == 800.0
    assert reg.expire(799.0) == []
    assert reg.expire(800.0) == [AOR]
    assert not reg.reachable(AOR, 800.0)


def test_too_brief_is_refused_with_min_expires_and_long_is_capped() -> None:
    reg = Registrar(RegistrarLimits(min_expires=60, max_expires=1800))
    brief = register(reg, ContactRequest(PHONE, 30))
    assert (brief.status, brief.min_expires) == (423, 60)
    assert not reg.reachable(AOR, 0.0)
    long = register(reg, ContactRequest(PHONE), header_expires=86400)
    assert [b.expires_in(0.0) for b in long.bindings] == [1800]
    default = Registrar().update(
        "sip:1002@callcenter",
        [ContactRequest(PHONE)],
        wildcard=False,
        header_expires=None,
        call_id="c",
        cseq=1,
        source=SRC,
        now=0.0,
    )
    assert [b.expires_in(0.0) for b in default.bindings] == [3600]


def test_two_devices_newest_first_and_one_removed() -> None:
    reg = Registrar()
    register(reg, ContactRequest(PHONE), now=0.0)
    both = register(reg, ContactRequest(SOFT), call_id="call-2", now=10.0)
    assert [b.contact for b in both.bindings] == [SOFT, PHONE]
    left = register(reg, ContactRequest(SOFT, 0), call_id="call-2", cseq=2, now=20.0)
    assert [b.contact for b in left.bindings] == [PHONE]


def test_out_of_order_register_changes_nothing() -> None:
    reg = Registrar()
    register(reg, ContactRequest(PHONE), cseq=5)
    stale = register(reg, ContactRequest(PHONE, 0), cseq=4)
    assert stale.status == 500
    assert reg.reachable(AOR, 1.0)
    # The same CSeq from another Call-ID (a rebooted phone) is a new registration.
    assert register(reg, ContactRequest(PHONE, 0), call_id="other", cseq=1).status == 200
    assert not reg.reachable(AOR, 1.0)


def test_wildcard_removes_all_only_with_expires_zero() -> None:
    reg = Registrar()
    register(reg, ContactRequest(PHONE))
    register(reg, ContactRequest(SOFT), call_id="call-2")
    assert register(reg, wildcard=True, header_expires=3600, cseq=2).status == 400
    assert (
        register(reg, ContactRequest(PHONE), wildcard=True, header_expires=0, cseq=2).status == 400
    )
    assert len(reg.lookup(AOR, 0.0)) == 2
    assert register(reg, wildcard=True, header_expires=0, cseq=2).status == 200
    assert reg.lookup(AOR, 0.0) == ()


def test_binding_limit_is_a_security_limit() -> None:
    reg = Registrar(RegistrarLimits(max_bindings=2))
    register(reg, ContactRequest("sip:a@h1"))
    register(reg, ContactRequest("sip:a@h2"), call_id="2", now=1.0)
    over = register(reg, ContactRequest("sip:a@h3"), call_id="3", now=2.0)
    assert over.status == 403
    assert [b.contact for b in reg.lookup(AOR, 2.0)] == ["sip:a@h2", "sip:a@h1"]
