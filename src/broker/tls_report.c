/*
 * The TLS report of a running broker: the verification failures its
 * configuration found (as a publisher checking subscribers, and as a
 * subscriber checking client certificates), served as JSON on GET
 * /debug/tls of its listener, so `cmicro tls report` can read it from the
 * outside, and parsed back by that command.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_int.h"

static const char *rep_mode_name(enum cmicro_tls_verify mode)
{
	switch (mode) {
	case CMICRO_TLS_VERIFY_ON:
		return "secure";
	case CMICRO_TLS_VERIFY_AUDIT:
		return "audit";
	default:
		return "off";
	}
}

static json_t *rep_finding_json(const struct cmicro_tls_finding *f)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "address", f->address,
			 "node_id", f->node_id, "peer", f->peer, "side",
			 f->peer_is_client ? "client" : "server", "reason",
			 cmicro_tls_reason_name(f->reason), "message", f->message, "count",
			 (json_int_t)f->count, "first_seen", (json_int_t)f->first_seen,
			 "last_seen", (json_int_t)f->last_seen);
}

static json_t *rep_findings_json(const struct cmicro_tls_config *cfg)
{
	json_t *list = json_array();
	size_t n = cmicro_tls_config_finding_count(cfg);

	for (size_t i = 0; list != NULL && i < n; i++) {
		struct cmicro_tls_finding f;

		if (cmicro_tls_config_finding(cfg, i, &f) == 0)
			json_array_append_new(list, rep_finding_json(&f));
	}
	return list;
}

static json_t *rep_reasons_json(const struct cmicro_tls_config *cfg)
{
	json_t *obj = json_object();

	for (int r = 1; obj != NULL && r < CMICRO_TLS_REASON_COUNT; r++) {
		uint64_t n = cmicro_tls_config_reason_count(cfg, (enum cmicro_tls_reason)r);

		if (n > 0)
			json_object_set_new(obj, cmicro_tls_reason_name((enum cmicro_tls_reason)r),
					    json_integer((json_int_t)n));
	}
	return obj;
}

CMICRO_API int cmicro_broker_tls_report(const struct cmicro_broker *b, char **json)
{
	json_t *obj;

	if (b == NULL || json == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_tls_report: broker and json must be "
						"given");
	obj = json_pack("{s:s, s:s?, s:s, s:I, s:o, s:o}", "broker_id", b->id, "address",
			cmicro_broker_address(b), "mode", rep_mode_name(cmicro_tls_config_get_verify(b->tls)),
			"verified", (json_int_t)cmicro_tls_config_verified_count(b->tls),
			"reasons", rep_reasons_json(b->tls), "findings", rep_findings_json(b->tls));
	*json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (*json == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory building the TLS report");
	return 0;
}

static int rep_reason_parse(const char *name, enum cmicro_tls_reason *out)
{
	for (int r = 1; r < CMICRO_TLS_REASON_COUNT; r++) {
		if (strcmp(name, cmicro_tls_reason_name((enum cmicro_tls_reason)r)) == 0) {
			*out = (enum cmicro_tls_reason)r;
			return 0;
		}
	}
	*out = CMICRO_TLS_REASON_OTHER;
	return 0;
}

static int rep_finding_parse(json_t *item, size_t i, struct cmicro_tls_finding *f)
{
	const char *address, *node, *peer, *side, *reason, *message;
	json_int_t count, first, last;
	json_error_t jerr;

	if (json_unpack_ex(item, &jerr, 0, "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}",
			   "address", &address, "node_id", &node, "peer", &peer, "side", &side,
			   "reason", &reason, "message", &message, "count", &count, "first_seen",
			   &first, "last_seen", &last) != 0)
		return cmi_error(CMICRO_EPROTO, "TLS report finding %zu is invalid: %s; the node "
						"may run another cmicro version",
				 i, jerr.text);
	cmi_fmt(f->address, sizeof(f->address), "%s", address);
	cmi_fmt(f->node_id, sizeof(f->node_id), "%s", node);
	cmi_fmt(f->peer, sizeof(f->peer), "%s", peer);
	cmi_fmt(f->message, sizeof(f->message), "%s", message);
	f->peer_is_client = strcmp(side, "client") == 0;
	f->count = count < 0 ? 0 : (uint64_t)count;
	f->first_seen = first;
	f->last_seen = last;
	return rep_reason_parse(reason, &f->reason);
}

static int rep_fill(json_t *root, struct cmi_tls_report *rep)
{
	const char *id = NULL, *address = NULL, *mode = NULL;
	json_t *findings = NULL;
	json_error_t jerr;
	int rc = 0;

	if (json_unpack_ex(root, &jerr, 0, "{s:s, s?s, s:s, s:o}", "broker_id", &id, "address",
			   &address, "mode", &mode, "findings", &findings) != 0 ||
	    !json_is_array(findings))
		return cmi_error(CMICRO_EPROTO, "the TLS report is invalid: %s; expected an "
						"object with broker_id, mode and a findings array",
				 json_is_array(findings) || findings == NULL ? jerr.text
									     : "findings is not an array");
	cmi_fmt(rep->broker_id, sizeof(rep->broker_id), "%s", id);
	cmi_fmt(rep->address, sizeof(rep->address), "%s", address ? address : "");
	cmi_fmt(rep->mode, sizeof(rep->mode), "%s", mode);
	rep->n = json_array_size(findings);
	rep->findings = cmi_calloc(rep->n ? rep->n : 1, sizeof(*rep->findings));
	if (rep->findings == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < rep->n && rc == 0; i++)
		rc = rep_finding_parse(json_array_get(findings, i), i, &rep->findings[i]);
	return rc;
}

int cmi_brk_tls_report_parse(const char *json, size_t len, struct cmi_tls_report **out)
{
	struct cmi_tls_report *rep;
	json_error_t jerr;
	json_t *root;
	int rc;

	*out = NULL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cmi_error(CMICRO_EPROTO, "the TLS report is not valid JSON (line %d: %s); "
						"check that the address is a cmicro broker",
				 jerr.line, jerr.text);
	rep = cmi_calloc(1, sizeof(*rep));
	rc = rep ? rep_fill(root, rep) : CMICRO_ENOMEM;
	json_decref(root);
	if (rc != 0) {
		cmi_brk_tls_report_free(rep);
		return rc;
	}
	*out = rep;
	return 0;
}

void cmi_brk_tls_report_free(struct cmi_tls_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->findings);
	free(rep);
}
