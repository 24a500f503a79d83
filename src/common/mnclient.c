// SPDX-License-Identifier: MIT
/* placeholder: being written */
#include "mnclient.h"
