"""What the bot shows beyond a line of text, built from a service's answer: the queue-number
chart (PNG) and the referral (PDF). Pure presentation: no aiogram, no database; the delivery side
(bot/) attaches the same PDF to notices and e-mails."""
