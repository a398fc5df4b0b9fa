"""The registry API: the aiohttp routes (server, routes), the request and answer models (schemas,
answers) and the OpenAPI document made from them (openapi). The kindergarten registry and
operators use it; its routes call the Kezek facade only."""
