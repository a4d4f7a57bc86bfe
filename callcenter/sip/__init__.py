"""SIP: messages, transactions, dialogs, digest authentication, SDP (sans-I/O), transports."""
