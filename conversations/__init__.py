"""The guided flows, one module each, on the shared step machinery of `conversations.steps`."""
