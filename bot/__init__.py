"""The running bot: settings, wiring, translations and the command line."""
