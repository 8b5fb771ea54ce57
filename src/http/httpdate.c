/* httpdate: the cached Date header; see httpdate.h. */
#include "http/httpdate.h"

#include <string.h>
#include <time.h>

const char *
http_date_line(size_t *len)
{
	static _Thread_local time_t cached;
	static _Thread_local char line[64];
	static _Thread_local size_t line_len;
	time_t now = time(NULL);

	if (now != cached || line_len == 0) {
		struct tm tm;

		gmtime_r(&now, &tm);
		line_len = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		cached = now;
	}
	*len = line_len;
	return line;
}
