typedef int gs__client_placeholder;
