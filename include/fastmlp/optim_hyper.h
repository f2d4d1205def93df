/* Hyperparameters of the optimizer kernels (optim.h), torch.optim names. Fields marked
 * "per step" are computed by the caller for step t (t counts from 1) before each call. */
#ifndef FASTMLP_OPTIM_HYPER_H
#define FASTMLP_OPTIM_HYPER_H

typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov;
    int first;              /* per step: 1 on step 1 (momentum buffer := d) */
} fm_sgd_hyper;

typedef struct {
    double lr, lr_decay, weight_decay, eps;
    double clr;             /* per step: lr / (1 + (t - 1) lr_decay) */
} fm_adagrad_hyper;

typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
} fm_rmsprop_hyper;

typedef struct {
    double lr, rho, eps, weight_decay;
} fm_adadelta_hyper;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int decoupled;          /* 0: Adam (d = g + wd p); 1: AdamW (p *= 1 - lr wd) */
    double step_size;       /* per step: lr / (1 - beta1^t) */
    double bc2_sqrt;        /* per step: sqrt(1 - beta2^t) */
} fm_adam_hyper;

#endif
