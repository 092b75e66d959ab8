//! mcpgate-core: the engine (monoio workers, routing, pipeline, upstream pools, config, admin).
