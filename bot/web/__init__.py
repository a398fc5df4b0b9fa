"""The public web page: what a referral's QR code opens (``bot.web.page``)."""
