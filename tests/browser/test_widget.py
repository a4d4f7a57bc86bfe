"""The customer chat widget in a real browser, against a real server and agent console.

The widget is opened on its demo page (``/widget/``), which embeds it the way a
company's site would. The agent's side is driven over ``/ws/agent`` from the
test, so what is checked here is only what the customer sees and sends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, expect

from callcenter.server import Server
from callcenter.web.live import WsOutbox
from tests.browser.conftest import Pages, screenshot
from tests.conftest import ApiClient, add_user
from tests.web.test_chat_flow import Socket

CUSTOMER = '#cc-messages [data-from="customer"] .bubble'
AGENT = '#cc-messages [data-from="agent"] .bubble'
NOTICE = '#cc-messages [data-from="system"]'

#: Every text a visitor can see or hear in the page and the widget's shadow root
#: (text, placeholders, labels, titles), except what is marked as English on
#: purpose (the "English" switch) or not for translation (code samples).
PAGE_TEXTS = """
() => {
  const texts = [document.title];
  const skip = (el) => el.closest('[lang="en"], [translate="no"], script, style, svg');
  const walk = (root) => {
    for (const node of root.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        const parent = node.parentElement;
        if (parent && !skip(parent) && node.nodeValue.trim()) texts.push(node.nodeValue.trim());
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        if (skip(node)) continue;
        for (const name of ["placeholder", "aria-label", "title", "alt"]) {
          const value = node.getAttribute(name);
          if (value) texts.push(value);
        }
        if (node.shadowRoot) walk(node.shadowRoot);
        walk(node);
      }
    }
  };
  walk(document.body);
  return texts;
}
"""


async def _chat_queue(client: ApiClient) -> None:
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "chat", "wrapup_seconds": 60})
    assert made.status == 201, made.body


async def _available_agent(
    server: Server, new_client: Any, username: str, display_name: str
) -> Socket:
    await add_user(server, username, "agent", display_name=display_name)
    api = new_client()
    assert (await api.login(username)).status == 200
    console = Socket(await api.console())
    await console.type("welcome")
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")
    return console


async def _start_chat(page: Page, name: str, message: str, **optional: str) -> None:
    await page.click("#cc-launcher")
    await page.fill("#cc-name", name)
    for field, value in optional.items():
        await page.fill(f"#cc-{field}", value)
    await page.fill("#cc-message", message)
    await page.click("#cc-start")
    await expect(page.locator("#cc-waiting")).to_be_visible()


async def _accept(agent: Socket) -> str:
    offer = await agent.type("offer")
    contact_id: str = offer["contact_id"]
    await agent.send(type="accept", contact_id=contact_id, ref="a")
    await agent.type("ok", ref="a")
    return contact_id


async def _drop_connection(server: Server, contact_id: str) -> None:
    """Close the customer's websocket from the server's side, as a broken network would."""
    assert server.center is not None
    outbox = server.center.contacts[contact_id].customer
    assert isinstance(outbox, WsOutbox)
    await outbox.socket.close()


async def _english(page: Page) -> list[str]:
    texts: list[str] = await page.evaluate(PAGE_TEXTS)
    return [text for text in texts if any("a" <= c.lower() <= "z" for c in text)]


async def test_customer_chats_with_an_agent(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await _chat_queue(client)
    agent = await _available_agent(server, new_client, "anna", "Anna Lee")
    page = await pages.open("/widget/")
    launcher = page.locator("#cc-launcher")
    await expect(launcher).to_have_text("Chat with us")
    await launcher.click()
    await expect(page.locator("#cc-panel")).to_be_visible()
    await expect(page.locator("#cc-name")).to_be_focused()

    # Nothing goes to the server until the form is right; the browser's own
    # bubbles are not used (they would speak the browser's language).
    await page.click("#cc-start")
    await expect(page.locator("#cc-name-error")).to_have_text("Please enter your name.")
    await expect(page.locator("#cc-message-error")).to_have_text("Please tell us how we can help.")
    await expect(page.locator("#cc-name")).to_be_focused()
    await page.fill("#cc-name", "<b>Zhou</b> Wei")
    await page.fill("#cc-email", "zhou at example")
    await page.fill("#cc-message", "My bill is wrong")
    await page.click("#cc-start")
    await expect(page.locator("#cc-email-error")).to_have_text(
        "Please enter a valid email address, or leave it empty."
    )
    await expect(page.locator("#cc-name-error")).to_be_hidden()
    await page.fill("#cc-email", "zhou@example.com")
    await page.press("#cc-email", "Enter")

    await expect(page.locator("#cc-waiting")).to_contain_text("You are in the queue")
    await expect(page.locator("#cc-subtitle")).to_have_text("Waiting for an agent…")
    await expect(page.locator(CUSTOMER)).to_have_text(["My bill is wrong"])
    await expect(page.locator("#cc-input")).to_be_focused()

    offer = await agent.type("offer")
    assert offer["pop"]["collected"]["name"] == "<b>Zhou</b> Wei"
    assert [e["email"] for e in offer["pop"]["customer"]["emails"]] == ["zhou@example.com"]
    assert [m["text"] for m in offer["transcript"]] == ["My bill is wrong"]
    contact_id = offer["contact_id"]
    await agent.send(type="accept", contact_id=contact_id, ref="a")
    await agent.type("ok", ref="a")
    await expect(page.locator(NOTICE)).to_have_text(["Anna Lee joined the chat"])
    await expect(page.locator("#cc-subtitle")).to_have_text("Chatting with Anna Lee")
    await expect(page.locator("#cc-waiting")).to_be_hidden()

    await agent.send(type="typing", contact_id=contact_id)
    await expect(page.locator("#cc-typing")).to_have_text("Anna Lee is typing…")
    reply = "Let me check <img src=x onerror=alert(1)> that for you"
    await agent.send(type="message", contact_id=contact_id, text=reply)
    await expect(page.locator(AGENT)).to_have_text([reply])
    await expect(page.locator(AGENT).locator("img")).to_have_count(0)
    await expect(page.locator('#cc-messages [data-from="agent"] .who')).to_have_text(["Anna Lee"])
    await expect(page.locator("#cc-typing")).to_be_empty()

    # Typing is announced to the agent; Shift+Enter is a new line, Enter sends.
    await page.locator("#cc-input").press_sequentially("Thanks")
    assert (await agent.type("typing", contact_id=contact_id))["from"] == "customer"
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("it is the March bill")
    await page.keyboard.press("Enter")
    heard = await agent.type("message", contact_id=contact_id, **{"from": "customer"})
    assert heard["text"] == "Thanks\nit is the March bill"
    await expect(page.locator("#cc-input")).to_have_value("")
    await expect(page.locator(CUSTOMER).nth(1)).to_have_text("Thanks\nit is the March bill")
    await screenshot(page, "widget")

    # Minimized with Escape, the launcher counts what arrives meanwhile.
    await page.keyboard.press("Escape")
    await expect(page.locator("#cc-panel")).to_be_hidden()
    await expect(launcher).to_be_focused()
    await agent.send(type="message", contact_id=contact_id, text="Found it: a double charge.")
    await expect(page.locator("#cc-unread")).to_have_text("1")
    await expect(launcher).to_have_attribute("aria-label", "Chat with us (1 unread)")
    await page.keyboard.press("Enter")
    await expect(page.locator(AGENT).last).to_have_text("Found it: a double charge.")
    await expect(page.locator("#cc-unread")).to_be_hidden()

    await page.click("#cc-end")
    await expect(page.locator("#cc-confirm")).to_contain_text("End this chat?")
    await page.click("#cc-confirm-end")
    await agent.type("wrapup", contact_id=contact_id)
    await expect(page.locator("#cc-ended-text")).to_have_text(
        "You ended the chat. Thank you for contacting us."
    )
    await expect(page.locator("#cc-input")).to_be_hidden()
    await expect(page.locator("#cc-restart")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#cc-name")).to_have_value("<b>Zhou</b> Wei")
    await expect(page.locator("#cc-message")).to_have_value("")
    await expect(page.locator("#cc-message")).to_be_focused()


async def test_widget_resumes_after_a_dropped_connection_and_a_reload(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await _chat_queue(client)
    agent = await _available_agent(server, new_client, "anna", "Anna Lee")
    page = await pages.open("/widget/")
    await _start_chat(page, "Ma Li", "Is my router broken?")
    contact_id = await _accept(agent)
    await agent.send(type="message", contact_id=contact_id, text="Try restarting it.")
    await expect(page.locator(AGENT)).to_have_text(["Try restarting it."])

    # The network drops: the widget comes back on its own and keeps the chat.
    await _drop_connection(server, contact_id)
    await expect(page.locator("#cc-banner")).to_have_text("Reconnected.")
    await agent.send(type="message", contact_id=contact_id, text="Did that help?")
    await expect(page.locator(AGENT)).to_have_text(["Try restarting it.", "Did that help?"])

    # Offline for a while: what the customer writes meanwhile waits, marked as
    # such, and goes out once the chat is back.
    await page.context.set_offline(True)
    await _drop_connection(server, contact_id)
    await expect(page.locator("#cc-banner")).to_have_text(
        "You are offline. The chat reconnects when your connection is back."
    )
    await page.fill("#cc-input", "Still no light on the box")
    await page.press("#cc-input", "Enter")
    waiting = page.locator('#cc-messages [data-from="customer"][data-state="pending"]')
    await expect(waiting.locator(".state")).to_have_text("Sending…")
    await page.context.set_offline(False)
    heard = await agent.type("message", contact_id=contact_id, **{"from": "customer"})
    assert heard["text"] == "Still no light on the box"
    await expect(waiting).to_have_count(0)

    # The customer goes to a page of the site without the widget (about:blank
    # would be another origin, without this tab's sessionStorage); the agent
    # writes meanwhile; the customer comes back.
    await page.goto(server.url + "/widget/no-widget-here.html")
    assert server.center is not None
    contact = server.center.contacts[contact_id]
    for _ in range(100):
        if contact.customer is None:
            break
        await asyncio.sleep(0.05)
    assert contact.customer is None
    await agent.send(type="message", contact_id=contact_id, text="I reset your line.", ref="m")
    await agent.type("ok", ref="m")
    await page.goto(server.url + "/widget/")
    await expect(page.locator("#cc-panel")).to_be_visible()
    await expect(page.locator(CUSTOMER)).to_have_text(
        ["Is my router broken?", "Still no light on the box"]
    )
    await expect(page.locator(AGENT)).to_have_text(
        ["Try restarting it.", "Did that help?", "I reset your line."]
    )
    await expect(page.locator(NOTICE)).to_have_text(["Anna Lee joined the chat"])
    await expect(page.locator("#cc-subtitle")).to_have_text("Chatting with Anna Lee")

    await page.fill("#cc-input", "It works now")
    await page.press("#cc-input", "Enter")
    heard = await agent.type("message", contact_id=contact_id, **{"from": "customer"})
    assert heard["text"] == "It works now"

    # A plain reload shows the same conversation once, not twice.
    await page.reload()
    await expect(page.locator(CUSTOMER)).to_have_text(
        ["Is my router broken?", "Still no light on the box", "It works now"]
    )
    await expect(page.locator(AGENT)).to_have_count(3)

    # Once the agent ends it, a reload starts afresh instead of resuming.
    await agent.send(type="end", contact_id=contact_id)
    await expect(page.locator("#cc-ended-text")).to_have_text(
        "Anna Lee ended the chat. Thank you for contacting us."
    )
    await page.reload()
    await page.click("#cc-launcher")
    await expect(page.locator("#cc-form")).to_be_visible()
    await expect(page.locator("#cc-name")).to_have_value("Ma Li")


async def test_chinese_widget_is_fully_translated(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await _chat_queue(client)
    agent = await _available_agent(server, new_client, "lin", "林芳")
    page = await pages.open("/widget/", language="zh-CN")
    await expect(page.locator("#cc-launcher")).to_have_text("在线客服")
    await page.click("#cc-launcher")
    await page.fill("#cc-phone", "call me")
    await page.click("#cc-start")
    await expect(page.locator("#cc-name-error")).to_have_text("请填写您的姓名。")
    await expect(page.locator("#cc-phone-error")).to_have_text("请填写有效的电话号码，或留空。")
    assert await _english(page) == []

    await page.fill("#cc-name", "周伟")
    await page.fill("#cc-phone", "138 0013 8000")
    await page.fill("#cc-message", "我的宽带断了")
    await page.click("#cc-start")
    await expect(page.locator("#cc-waiting")).to_contain_text("您已在排队中")
    assert await _english(page) == []

    contact_id = await _accept(agent)
    await expect(page.locator(NOTICE)).to_have_text(["林芳 已加入对话"])
    await agent.send(type="message", contact_id=contact_id, text="您好，我来帮您查一下线路。")
    await expect(page.locator(AGENT)).to_have_text(["您好，我来帮您查一下线路。"])
    await agent.send(type="typing", contact_id=contact_id)
    await expect(page.locator("#cc-typing")).to_have_text("林芳 正在输入…")
    assert await _english(page) == []
    await screenshot(page, "widget-zh")

    # Switching inside the widget re-labels what is already shown, and the page follows.
    await page.click("#cc-language")
    await expect(page.locator("#cc-subtitle")).to_have_text("Chatting with 林芳")
    await expect(page.locator(NOTICE)).to_have_text(["林芳 joined the chat"])
    await expect(page.locator("#cc-input")).to_have_attribute("placeholder", "Type a message…")
    await expect(page.locator("h1")).to_have_text("Fibre that keeps up with you")


async def test_narrow_screen_shows_the_whole_panel(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _chat_queue(client)
    page = await pages.open("/widget/", viewport=(375, 700))
    await page.click("#cc-launcher")
    opened = page.locator("#cc-panel")
    await opened.evaluate("el => Promise.all(el.getAnimations().map(a => a.finished))")
    panel = await opened.bounding_box()
    assert panel is not None
    left, top = round(panel["x"]), round(panel["y"])
    right, bottom = round(panel["x"] + panel["width"]), round(panel["y"] + panel["height"])
    assert (left, top, right, bottom) == (0, 0, 375, 700)
    for selector in ("#cc-title", "#cc-close", "#cc-name", "#cc-message", "#cc-start"):
        await expect(page.locator(selector)).to_be_in_viewport(ratio=1)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375

    await page.fill("#cc-name", "Ana")
    await page.fill("#cc-message", "Hello from my phone")
    await page.click("#cc-start")
    for selector in ("#cc-waiting", "#cc-input", "#cc-send", "#cc-end"):
        await expect(page.locator(selector)).to_be_in_viewport(ratio=1)
    await expect(page.locator(CUSTOMER)).to_be_in_viewport(ratio=1)
    await expect(page.locator("#cc-launcher")).to_be_hidden()  # it would cover the composer
    await screenshot(page, "widget-narrow")

    await page.click("#cc-close")
    await expect(page.locator("#cc-panel")).to_be_hidden()
    await expect(page.locator("#cc-launcher")).to_be_in_viewport(ratio=1)
    await expect(page.locator("#cc-launcher")).to_be_focused()


@pytest.mark.settings(chat={"max_new_per_minute": 1, "max_messages_per_minute": 1})
async def test_refusals_are_explained_in_the_visitors_language(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _chat_queue(client)
    page = await pages.open("/widget/", language="zh-CN")
    await _start_chat(page, "周伟", "你好")
    for text in ("第一条", "第二条"):
        await page.fill("#cc-input", text)
        await page.press("#cc-input", "Enter")
    await expect(page.locator("#cc-banner")).to_have_text("您发送消息太快了，请稍候。")
    refused = page.locator('#cc-messages [data-from="customer"][data-state="failed"]')
    await expect(refused.locator(".bubble")).to_have_text(["第二条"])
    await expect(refused.locator(".state")).to_have_text("未发送。 重试")

    await page.click("#cc-end")
    await page.click("#cc-confirm-end")
    await expect(page.locator("#cc-ended-text")).to_have_text("您已结束对话。感谢您的咨询。")
    await page.click("#cc-restart")
    await page.fill("#cc-message", "再问一次")
    await page.click("#cc-start")
    await expect(page.locator("#cc-form-error")).to_have_text(
        "您的网络发起的对话过多，请一分钟后再试。"
    )
    await expect(page.locator("#cc-start")).to_be_enabled()
    await expect(page.locator("#cc-name")).to_have_value("周伟")
    await expect(page.locator("#cc-message")).to_have_value("再问一次")
    assert await _english(page) == []
