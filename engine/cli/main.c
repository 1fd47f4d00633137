#include <stdio.h>
int main(void)
{
    puts("keapsync " KEAPSYNC_VERSION);
    return 0;
}
