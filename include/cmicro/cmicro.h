/* The whole cmicro public API. */
#ifndef CMICRO_H
#define CMICRO_H

#include <cmicro/common.h>
#include <cmicro/cert.h>
#include <cmicro/tls.h>
#include <cmicro/registry.h>
#include <cmicro/broker.h>

#endif
