"""The registry API: the aiohttp routes (server), the request models (schemas) and the OpenAPI document
(openapi). The kindergarten registry and operators use it; its routes call the Kezek facade only."""
