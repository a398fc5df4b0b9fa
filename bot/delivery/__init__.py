"""Delivery of notices: the outbox senders (Telegram and e-mail), each notice kind rendered in
Russian and Kazakh (notices), the e-mail transports (mail), the deep links they carry."""
