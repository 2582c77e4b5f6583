/* main.c - the magnetar binary: subcommand dispatch (filled in by the svc module). */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "magnetar: not built yet\n");
    return 1;
}
