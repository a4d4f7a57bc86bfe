"""Web chat: the customer's websocket, chat sessions and verified identities."""
