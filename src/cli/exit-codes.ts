/** How `peft-lab` ends: 0 done, 1 bad input or failure, 2 usage error, 130 cancelled (as for SIGINT). */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_CANCELLED = 130;
