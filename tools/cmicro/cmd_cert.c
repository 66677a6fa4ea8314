/* `cmicro cert`: create a CA, issue and self-sign certificates, inspect them. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmicro/cmicro.h>

#include "cert_print.h"
#include "cli.h"

/* Everything the cert subcommands accept; each uses a subset. */
struct cert_args {
	const char *out_cert;
	const char *out_key;
	const char *cn;
	const char *ca_cert;
	const char *ca_key;
	const char *ca_pass_env;
	struct cmicro_cert_opts opts;
	bool chain;
	bool force;
	bool allow_weak;
	bool path_len_given;
	bool json;
	char **hosts;
	int n_hosts;
	char default_cert[300];
	char default_key[300];
};

enum cert_opt {
	OPT_OUT_CERT = 256,
	OPT_OUT_KEY,
	OPT_CN,
	OPT_DAYS,
	OPT_KEY_TYPE,
	OPT_RSA_BITS,
	OPT_CA_CERT,
	OPT_CA_KEY,
	OPT_CA_PASS_ENV,
	OPT_CHAIN,
	OPT_USAGE,
	OPT_INTERMEDIATE,
	OPT_PATH_LEN,
	OPT_FORCE,
	OPT_JSON,
	OPT_ALLOW_WEAK,
	OPT_HELP
};

static const struct option cert_long_opts[] = {
    {"out-cert", required_argument, NULL, OPT_OUT_CERT},
    {"out-key", required_argument, NULL, OPT_OUT_KEY},
    {"cn", required_argument, NULL, OPT_CN},
    {"days", required_argument, NULL, OPT_DAYS},
    {"key-type", required_argument, NULL, OPT_KEY_TYPE},
    {"rsa-bits", required_argument, NULL, OPT_RSA_BITS},
    {"ca-cert", required_argument, NULL, OPT_CA_CERT},
    {"ca-key", required_argument, NULL, OPT_CA_KEY},
    {"ca-pass-env", required_argument, NULL, OPT_CA_PASS_ENV},
    {"chain", no_argument, NULL, OPT_CHAIN},
    {"usage", required_argument, NULL, OPT_USAGE},
    {"intermediate", no_argument, NULL, OPT_INTERMEDIATE},
    {"path-len", required_argument, NULL, OPT_PATH_LEN},
    {"force", no_argument, NULL, OPT_FORCE},
    {"json", no_argument, NULL, OPT_JSON},
    {"allow-weak", no_argument, NULL, OPT_ALLOW_WEAK},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char cert_usage_text[] =
    "usage: cmicro cert SUBCOMMAND [OPTIONS]\n"
    "\n"
    "subcommands:\n"
    "  ca          create a self-signed root CA and its key\n"
    "  issue       issue a server or client certificate (or intermediate CA) from a CA\n"
    "  selfsigned  create go-micro's self-signed development certificate\n"
    "  inspect     print the details of every certificate in a PEM file\n"
    "\n"
    "Run 'cmicro cert SUBCOMMAND --help' for its options.\n";

static const char cert_ca_help[] =
    "usage: cmicro cert ca [--out-cert FILE] [--out-key FILE] [--cn NAME] [--days N]\n"
    "                      [--key-type ec|ec384|rsa|ed25519] [--rsa-bits N]\n"
    "                      [--allow-weak] [--force]\n"
    "\n"
    "Creates a self-signed root CA (organisation \"Micro\") and its private key.\n"
    "\n"
    "  --out-cert FILE  certificate file to write (default: ca.pem in the current directory)\n"
    "  --out-key FILE   private key file, written with mode 0600 (default: ca.key)\n"
    "  --cn NAME        subject common name (default: \"cmicro CA\")\n"
    "  --days N         validity in days from now (default: 3650)\n"
    "  --key-type TYPE  ec (ECDSA P-256, default), ec384 (P-384), rsa or ed25519\n"
    "  --rsa-bits N     RSA key size in bits, 2048 to 8192 (default: 2048)\n"
    "  --allow-weak     accept --rsa-bits below 2048 (peers in secure mode reject such\n"
    "                   keys with reason weak_key; for tests only)\n"
    "  --force          replace existing output files (the old key is lost)\n";

static const char cert_issue_help[] =
    "usage: cmicro cert issue --ca-cert FILE --ca-key FILE [OPTIONS] HOST...\n"
    "\n"
    "Issues a certificate for the hosts (DNS names and IP addresses, which become\n"
    "subjectAltNames) signed by the CA.\n"
    "\n"
    "  --ca-cert FILE     CA certificate (with its own chain for an intermediate CA)\n"
    "  --ca-key FILE      CA private key\n"
    "  --ca-pass-env VAR  read the CA key's passphrase from environment variable VAR\n"
    "  --out-cert FILE    certificate file to write (default: HOST.pem in the current\n"
    "                     directory, from the first HOST, with characters other than\n"
    "                     letters, digits, '.' and '-' replaced by '_')\n"
    "  --out-key FILE     private key file, written with mode 0600 (default: HOST.key)\n"
    "  --chain            also write the CA chain after the certificate into --out-cert\n"
    "  --usage USAGE      server (default), client or both: the extended key usages\n"
    "  --days N           validity in days from now (default: 365; 3650 for --intermediate)\n"
    "  --cn NAME          subject common name (default: the first HOST)\n"
    "  --intermediate     issue an intermediate CA; HOST is then optional\n"
    "  --path-len N       with --intermediate: how many CAs may follow it (default: no limit)\n"
    "  --key-type TYPE    ec (default), ec384, rsa or ed25519\n"
    "  --rsa-bits N       RSA key size in bits, 2048 to 8192 (default: 2048)\n"
    "  --allow-weak       accept --rsa-bits below 2048 (rejected as weak_key by peers in\n"
    "                     secure mode; for tests only)\n"
    "  --force            replace existing output files (the old key is lost)\n"
    "\n"
    "An encrypted --ca-key needs --ca-pass-env.\n";

static const char cert_selfsigned_help[] =
    "usage: cmicro cert selfsigned [--out-cert FILE] [--out-key FILE] [--force] HOST...\n"
    "\n"
    "Creates the certificate go-micro generates for a broker without one: ECDSA P-256,\n"
    "valid one year from now, organisation \"Micro\", CA:TRUE, serverAuth, with IP\n"
    "subjectAltNames for IP hosts and DNS ones for the rest. Peers in secure mode only\n"
    "accept it when they trust this exact certificate. Its key type, validity and names\n"
    "are fixed, so --days, --cn, --key-type and the CA options are not accepted; use\n"
    "'cmicro cert ca' and 'cmicro cert issue' for a certificate of your choice.\n"
    "\n"
    "  --out-cert FILE  certificate file (default: HOST.pem from the first HOST, as for issue)\n"
    "  --out-key FILE   private key file, mode 0600 (default: HOST.key)\n"
    "  --force          replace existing output files (the old key is lost)\n";

static const char cert_inspect_help[] =
    "usage: cmicro cert inspect FILE [--json]\n"
    "\n"
    "Prints subject, issuer, names, validity, key, signature algorithm, usages and\n"
    "SHA-256 fingerprint of every certificate in the PEM file, in file order (the leaf\n"
    "first). Exits 2 when the file cannot be loaded.\n"
    "\n"
    "  --json  print a JSON array with one object per certificate\n";

#define OPT_BIT(opt) (1u << ((opt)-OPT_OUT_CERT))

/* A cert subcommand: its name, help, the options it accepts and its body. */
struct cert_sub {
	const char *name;
	const char *help;
	unsigned allowed;
	int (*run)(struct cert_args *args);
};

static int cert_parse_int(const char *opt, const char *value, long min, long max, int *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max) {
		cli_error("invalid value \"%s\" for %s: give a whole number from %ld to %ld", value,
		          opt, min, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int cert_parse_key_type(const char *value, enum cmicro_key_type *out)
{
	static const struct {
		const char *name;
		enum cmicro_key_type type;
	} types[] = {
	    {"ec", CMICRO_KEY_EC_P256},      {"ec256", CMICRO_KEY_EC_P256},
	    {"ec384", CMICRO_KEY_EC_P384},   {"rsa", CMICRO_KEY_RSA},
	    {"ed25519", CMICRO_KEY_ED25519},
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(value, types[i].name) == 0) {
			*out = types[i].type;
			return 0;
		}
	}
	cli_error("invalid --key-type \"%s\": use ec, ec384, rsa or ed25519", value);
	return -1;
}

static int cert_parse_usage(const char *value, enum cmicro_cert_usage *out)
{
	if (strcmp(value, "server") == 0)
		*out = CMICRO_CERT_USAGE_SERVER;
	else if (strcmp(value, "client") == 0)
		*out = CMICRO_CERT_USAGE_CLIENT;
	else if (strcmp(value, "both") == 0)
		*out = CMICRO_CERT_USAGE_BOTH;
	else {
		cli_error("invalid --usage \"%s\": use server, client or both", value);
		return -1;
	}
	return 0;
}

/* Stores one parsed option; returns -1 after printing an error. */
static int cert_apply_opt(struct cert_args *args, int opt, const char *value)
{
	struct cmicro_cert_opts *o = &args->opts;

	switch (opt) {
	case OPT_OUT_CERT:
		args->out_cert = value;
		return 0;
	case OPT_OUT_KEY:
		args->out_key = value;
		return 0;
	case OPT_CN:
		o->common_name = value;
		return 0;
	case OPT_CA_CERT:
		args->ca_cert = value;
		return 0;
	case OPT_CA_KEY:
		args->ca_key = value;
		return 0;
	case OPT_CA_PASS_ENV:
		args->ca_pass_env = value;
		return 0;
	case OPT_CHAIN:
		args->chain = true;
		return 0;
	case OPT_INTERMEDIATE:
		o->is_ca = true;
		return 0;
	case OPT_FORCE:
		args->force = true;
		return 0;
	case OPT_JSON:
		args->json = true;
		return 0;
	case OPT_ALLOW_WEAK:
		args->allow_weak = true;
		return 0;
	case OPT_DAYS:
		return cert_parse_int("--days", value, 1, 36500, &o->days);
	case OPT_RSA_BITS:
		return cert_parse_int("--rsa-bits", value, 1024, 8192, &o->rsa_bits);
	case OPT_PATH_LEN:
		args->path_len_given = true;
		return cert_parse_int("--path-len", value, 0, 16, &o->path_len);
	case OPT_KEY_TYPE:
		return cert_parse_key_type(value, &o->key_type);
	case OPT_USAGE:
		return cert_parse_usage(value, &o->usage);
	default:
		return -1;
	}
}

/* Explains an option of cert_long_opts that this subcommand does not take. */
static void cert_not_an_option(const struct cert_sub *sub, const char *name)
{
	const char *why = "";

	if (strcmp(sub->name, "selfsigned") == 0)
		why = " (it makes go-micro's fixed one-year ECDSA P-256 certificate; use 'cmicro "
		      "cert ca' and 'cmicro cert issue' to choose)";
	cli_error("--%s is not an option of 'cmicro cert %s'%s; see 'cmicro cert %s --help'",
	          name, sub->name, why, sub->name);
}

/* Parses argv (argv[0] is the subcommand); returns 1 when --help was given,
 * 0 when the arguments are valid, -1 after printing an error. */
static int cert_parse(const struct cert_sub *sub, int argc, char **argv, struct cert_args *args)
{
	int index = -1;
	int opt;

	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", cert_long_opts, &index)) != -1) {
		if (opt == 'h' || opt == OPT_HELP)
			return 1;
		if (opt == ':') {
			cli_error("option %s needs a value; see 'cmicro cert %s --help'",
			          argv[optind - 1], sub->name);
			return -1;
		}
		if (opt == '?') {
			cli_error("unknown option %s for 'cmicro cert %s'; see --help",
			          argv[optind - 1], sub->name);
			return -1;
		}
		/* argv[optind - 1] may be the option's value here, so name it from the table. */
		if ((sub->allowed & OPT_BIT(opt)) == 0) {
			cert_not_an_option(sub, cert_long_opts[index].name);
			return -1;
		}
		if (cert_apply_opt(args, opt, optarg) != 0)
			return -1;
	}
	args->hosts = argv + optind;
	args->n_hosts = argc - optind;
	args->opts.hosts = (const char *const *)args->hosts;
	args->opts.n_hosts = (size_t)args->n_hosts;
	return 0;
}

static int cert_exit_code(int rc)
{
	return cmicro_err_kind(rc) == CMICRO_KIND_INTERNAL ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
}

/* Fills in NAME.pem / NAME.key for outputs not given on the command line. */
static void cert_default_outputs(struct cert_args *args, const char *name)
{
	char base[256];
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < sizeof(base); i++) {
		char c = name[i];

		base[i] = (isalnum((unsigned char)c) || c == '.' || c == '-') ? c : '_';
	}
	base[i] = '\0';
	snprintf(args->default_cert, sizeof(args->default_cert), "%s.pem", base);
	snprintf(args->default_key, sizeof(args->default_key), "%s.key", base);
	if (args->out_cert == NULL)
		args->out_cert = args->default_cert;
	if (args->out_key == NULL)
		args->out_key = args->default_key;
}

/* Rejects outputs that would destroy a key or a certificate, or write both
 * parts to one file. An existing certificate counts too: replacing ca.pem
 * alone would leave the old ca.key without its certificate. */
static int cert_check_outputs(const struct cert_args *args)
{
	if (strcmp(args->out_cert, args->out_key) == 0) {
		cli_error("--out-cert and --out-key are both \"%s\": give two different files",
		          args->out_cert);
		return -1;
	}
	if (!args->force && access(args->out_key, F_OK) == 0) {
		cli_error("key file \"%s\" already exists; pass --force to replace it (the old "
		          "key is lost) or choose another --out-key",
		          args->out_key);
		return -1;
	}
	if (!args->force && access(args->out_cert, F_OK) == 0) {
		cli_error("certificate file \"%s\" already exists; pass --force to replace it "
		          "(together with its key) or choose another --out-cert",
		          args->out_cert);
		return -1;
	}
	return 0;
}

/* Rejects option combinations that make a certificate peers would reject or
 * that mean nothing. */
static int cert_check_choices(const struct cert_args *args)
{
	const struct cmicro_cert_opts *o = &args->opts;

	if (o->key_type == CMICRO_KEY_RSA && o->rsa_bits != 0 && o->rsa_bits < 2048 &&
	    !args->allow_weak) {
		cli_error("--rsa-bits %d is too small: peers in secure mode reject RSA keys below "
		          "2048 bits (reason weak_key); give 2048 or more, or --allow-weak for a "
		          "test certificate",
		          o->rsa_bits);
		return -1;
	}
	if (o->key_type == CMICRO_KEY_RSA && o->rsa_bits != 0 && o->rsa_bits < 2048)
		fprintf(stderr, "cmicro: warning: a %d-bit RSA key is rejected as weak_key by "
		                "peers in secure mode; use it for tests only\n",
		        o->rsa_bits);
	if (args->path_len_given && !o->is_ca) {
		cli_error("--path-len applies only to a CA: add --intermediate, or drop --path-len "
		          "for a leaf certificate");
		return -1;
	}
	return 0;
}

/* Saves cert to the outputs and prints what was written. */
static int cert_write(const struct cert_args *args, const struct cmicro_cert *cert,
                      const char *what)
{
	struct cmicro_cert_info *info = NULL;
	unsigned flags = args->chain ? CMICRO_CERT_SAVE_CHAIN : 0;
	int rc;

	rc = cmicro_cert_save(cert, args->out_cert, args->out_key, flags);
	if (rc != 0) {
		cli_error_rc("cannot save the certificate and key", rc);
		return cert_exit_code(rc);
	}

	printf("created %s\n", what);
	printf("  certificate:  %s%s\n", args->out_cert, args->chain ? " (with the CA chain)" : "");
	printf("  private key:  %s (mode 0600)\n", args->out_key);
	rc = cmicro_cert_inspect(cert, 0, &info);
	if (rc != 0) {
		cli_error_rc("cannot inspect the new certificate", rc);
		return CLI_EXIT_INTERNAL;
	}
	cert_print_text(stdout, info, "  ");
	cmicro_cert_info_free(info);
	return CLI_EXIT_OK;
}

static int cert_run_ca(struct cert_args *args)
{
	struct cmicro_cert *ca = NULL;
	int rc;

	if (args->n_hosts > 0) {
		cli_error("unexpected argument \"%s\": 'cmicro cert ca' takes only options",
		          args->hosts[0]);
		return CLI_EXIT_USAGE;
	}
	cert_default_outputs(args, "ca");
	if (cert_check_choices(args) != 0 || cert_check_outputs(args) != 0)
		return CLI_EXIT_USAGE;

	rc = cmicro_cert_ca_new(&args->opts, &ca);
	if (rc != 0) {
		cli_error_rc("cannot create the CA", rc);
		return cert_exit_code(rc);
	}
	rc = cert_write(args, ca, "root CA");
	cmicro_cert_free(ca);
	return rc;
}

/* Loads the issuing CA with its key, and the key's passphrase when asked. */
static int cert_load_ca(const struct cert_args *args, struct cmicro_cert **ca)
{
	const char *pass = NULL;
	int rc;

	if (args->ca_cert == NULL || args->ca_key == NULL) {
		cli_error("'cmicro cert issue' needs --ca-cert and --ca-key (create them with "
		          "'cmicro cert ca')");
		return CLI_EXIT_USAGE;
	}
	if (args->ca_pass_env != NULL) {
		pass = getenv(args->ca_pass_env);
		if (pass == NULL) {
			cli_error("--ca-pass-env %s: the environment variable is not set; export "
			          "it with the CA key's passphrase",
			          args->ca_pass_env);
			return CLI_EXIT_USAGE;
		}
	}
	rc = cmicro_cert_load(args->ca_cert, args->ca_key, pass, ca);
	if (rc != 0) {
		bool encrypted = pass == NULL && strstr(cmicro_last_errmsg(), "is encrypted") != NULL;

		cli_error_rc("cannot load the CA", rc);
		if (encrypted)
			cli_error("to use the encrypted key as it is, export its passphrase in an "
			          "environment variable and name it with --ca-pass-env VAR");
		return cert_exit_code(rc);
	}
	return CLI_EXIT_OK;
}

static int cert_run_issue(struct cert_args *args)
{
	struct cmicro_cert *ca = NULL;
	struct cmicro_cert *cert = NULL;
	int rc;

	if (args->n_hosts == 0 && !args->opts.is_ca) {
		cli_error("no HOST given: name at least one DNS name or IP address the "
		          "certificate is for");
		return CLI_EXIT_USAGE;
	}
	cert_default_outputs(args, args->n_hosts > 0 ? args->hosts[0] : "intermediate-ca");
	if (cert_check_choices(args) != 0 || cert_check_outputs(args) != 0)
		return CLI_EXIT_USAGE;

	rc = cert_load_ca(args, &ca);
	if (rc != CLI_EXIT_OK)
		return rc;

	rc = cmicro_cert_issue(ca, &args->opts, &cert);
	if (rc != 0) {
		cli_error_rc("cannot issue the certificate", rc);
		rc = cert_exit_code(rc);
	} else {
		rc = cert_write(args, cert, args->opts.is_ca ? "intermediate CA" : "certificate");
	}
	cmicro_cert_free(cert);
	cmicro_cert_free(ca);
	return rc;
}

static int cert_run_selfsigned(struct cert_args *args)
{
	struct cmicro_cert *cert = NULL;
	int rc;

	if (args->n_hosts == 0) {
		cli_error("no HOST given: name at least one DNS name or IP address the "
		          "certificate is for");
		return CLI_EXIT_USAGE;
	}
	cert_default_outputs(args, args->hosts[0]);
	if (cert_check_outputs(args) != 0)
		return CLI_EXIT_USAGE;

	rc = cmicro_cert_selfsigned((const char *const *)args->hosts, (size_t)args->n_hosts, &cert);
	if (rc != 0) {
		cli_error_rc("cannot create the certificate", rc);
		return cert_exit_code(rc);
	}
	rc = cert_write(args, cert, "self-signed certificate");
	cmicro_cert_free(cert);
	return rc;
}

static int cert_inspect_json(const struct cmicro_cert *cert)
{
	json_t *array = json_array();
	size_t n = cmicro_cert_chain_len(cert);
	int rc = 0;

	for (size_t i = 0; rc == 0 && array != NULL && i < n; i++) {
		struct cmicro_cert_info *info = NULL;
		json_t *obj = NULL;

		rc = cmicro_cert_inspect(cert, i, &info);
		if (rc == 0)
			obj = cert_print_json(info);
		if (obj != NULL) {
			json_object_set_new(obj, "position", json_integer((json_int_t)i));
			json_object_set_new(obj, "role", json_string(cert_print_role(info, i)));
		}
		if (rc == 0 && (obj == NULL || json_array_append_new(array, obj) != 0))
			rc = CMICRO_ENOMEM;
		cmicro_cert_info_free(info);
	}
	if (rc != 0 || array == NULL) {
		json_decref(array);
		cli_error_rc("cannot inspect the certificate", rc != 0 ? rc : CMICRO_ENOMEM);
		return CLI_EXIT_INTERNAL;
	}
	json_dumpf(array, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(array);
	return CLI_EXIT_OK;
}

static int cert_inspect_text(const struct cmicro_cert *cert, const char *file)
{
	size_t n = cmicro_cert_chain_len(cert);

	printf("%s: %zu certificate%s\n", file, n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct cmicro_cert_info *info = NULL;
		int rc = cmicro_cert_inspect(cert, i, &info);

		if (rc != 0) {
			cli_error_rc("cannot inspect the certificate", rc);
			return CLI_EXIT_INTERNAL;
		}
		printf("\ncertificate %zu of %zu (%s)\n", i + 1, n, cert_print_role(info, i));
		cert_print_text(stdout, info, "  ");
		cmicro_cert_info_free(info);
	}
	return CLI_EXIT_OK;
}

static int cert_run_inspect(struct cert_args *args)
{
	struct cmicro_cert *cert = NULL;
	int rc;

	if (args->n_hosts != 1) {
		cli_error("'cmicro cert inspect' takes exactly one FILE (got %d)", args->n_hosts);
		return CLI_EXIT_USAGE;
	}
	rc = cmicro_cert_load(args->hosts[0], NULL, NULL, &cert);
	if (rc != 0) {
		cli_error_rc("cannot load the certificate", rc);
		return cert_exit_code(rc);
	}
	rc = args->json ? cert_inspect_json(cert) : cert_inspect_text(cert, args->hosts[0]);
	cmicro_cert_free(cert);
	return rc;
}

static const struct cert_sub cert_subs[] = {
    {"ca", cert_ca_help,
     OPT_BIT(OPT_OUT_CERT) | OPT_BIT(OPT_OUT_KEY) | OPT_BIT(OPT_CN) | OPT_BIT(OPT_DAYS) |
         OPT_BIT(OPT_KEY_TYPE) | OPT_BIT(OPT_RSA_BITS) | OPT_BIT(OPT_FORCE) |
         OPT_BIT(OPT_ALLOW_WEAK),
     cert_run_ca},
    {"issue", cert_issue_help,
     OPT_BIT(OPT_OUT_CERT) | OPT_BIT(OPT_OUT_KEY) | OPT_BIT(OPT_CN) | OPT_BIT(OPT_DAYS) |
         OPT_BIT(OPT_KEY_TYPE) | OPT_BIT(OPT_RSA_BITS) | OPT_BIT(OPT_FORCE) | OPT_BIT(OPT_CA_CERT) |
         OPT_BIT(OPT_CA_KEY) | OPT_BIT(OPT_CA_PASS_ENV) | OPT_BIT(OPT_CHAIN) | OPT_BIT(OPT_USAGE) |
         OPT_BIT(OPT_INTERMEDIATE) | OPT_BIT(OPT_PATH_LEN) | OPT_BIT(OPT_ALLOW_WEAK),
     cert_run_issue},
    {"selfsigned", cert_selfsigned_help,
     OPT_BIT(OPT_OUT_CERT) | OPT_BIT(OPT_OUT_KEY) | OPT_BIT(OPT_FORCE), cert_run_selfsigned},
    {"inspect", cert_inspect_help, OPT_BIT(OPT_JSON), cert_run_inspect},
};

static int cert_run_sub(const struct cert_sub *sub, int argc, char **argv)
{
	struct cert_args args;
	int parsed;

	memset(&args, 0, sizeof(args));
	cmicro_cert_opts_init(&args.opts);
	parsed = cert_parse(sub, argc, argv, &args);
	if (parsed == 1) {
		fputs(sub->help, stdout);
		return CLI_EXIT_OK;
	}
	if (parsed != 0)
		return CLI_EXIT_USAGE;
	return sub->run(&args);
}

int cmd_cert(int argc, char **argv)
{
	if (argc < 2) {
		fputs(cert_usage_text, stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_is_help(argv[1])) {
		fputs(cert_usage_text, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(cert_subs) / sizeof(cert_subs[0]); i++) {
		if (strcmp(argv[1], cert_subs[i].name) == 0)
			return cert_run_sub(&cert_subs[i], argc - 1, argv + 1);
	}
	cli_error("unknown subcommand \"cert %s\"; run 'cmicro cert --help' for the list", argv[1]);
	return CLI_EXIT_USAGE;
}
