/* The HTTP broker (go-micro's wire protocol). Declared by the broker module. */
#ifndef CMICRO_BROKER_H
#define CMICRO_BROKER_H

#include <cmicro/common.h>
#include <cmicro/registry.h>
#include <cmicro/tls.h>

#endif
