/* Stand-in for the compiler-generated model.h, binding kiln-runner to the fake model. */
#ifndef KILN_TESTS_FAKE_RUNNER_MODEL_H
#define KILN_TESTS_FAKE_RUNNER_MODEL_H

#include "fake_model.h"

#define KILN_MODEL_DESC (&kiln_fake_model_desc)

#endif
