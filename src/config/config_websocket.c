/* config_websocket: the "websocket*" keys of a route; see config_internal.h. */
#include "config/config_internal.h"

#include <string.h>

void
config_parse_route_websocket(struct config_loader *ld, const char *path, const json_t *v,
			     struct config_route *r, size_t nactions)
{
	static const char *const keys[] = { "websocket", "websocket_idle_timeout",
					    "websocket_session_end", NULL };
	static const char *const session_end[] = { "close", "keep", NULL };
	char kp[CONFIG_JPATH_MAX];
	bool on = true;
	int end = 0;

	r->websocket_idle_timeout = 600;
	for (size_t i = 0; keys[i] != NULL; i++)
		if (json_object_get(v, keys[i]) != NULL && nactions == 1 &&
		    r->action != ACTION_PROXY)
			config_error(ld, config_jkey(kp, path, keys[i]),
				     "only a route with \"upstream\" passes WebSocket upgrades");
	if (config_bool(ld, config_jkey(kp, path, "websocket"), json_object_get(v, "websocket"), &on))
		r->websocket_off = !on;
	config_seconds(ld, config_jkey(kp, path, "websocket_idle_timeout"),
		       json_object_get(v, "websocket_idle_timeout"), &r->websocket_idle_timeout);
	if (config_enum(ld, config_jkey(kp, path, "websocket_session_end"),
			json_object_get(v, "websocket_session_end"), session_end, &end))
		r->websocket_keep_at_session_end = end == 1;
}
