// SPDX-License-Identifier: MIT
/* placeholder: being written */
#include "http.h"
