"""The projector service: `service` runs it (serve, rebuild, replay, swap); `host` owns the
projection files, their runtimes and the query responder."""
