#include "core/retry.h"
#include <gtest/gtest.h>
