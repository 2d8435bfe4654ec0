// A real second normalising hop for the security tests (tests/src/harness/tomcat.rs): embedded
// Tomcat 10 (Debian's libtomcat10-java) on 127.0.0.1, a servlet mapped to "/*" that answers
//   200 "tomcat resolved <METHOD> <servlet path + path info>"
// i.e. the path Tomcat dispatched on, after its own normalisation: `;` path parameters cut,
// %xx decoded, dot segments removed. Prints "listening <port>" once it accepts connections.
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.file.Files;
import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public class Resolver {
    static class Resolve extends HttpServlet {
        private static final long serialVersionUID = 1L;

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            String info = req.getPathInfo();
            String path = req.getServletPath() + (info == null ? "" : info);
            resp.setContentType("text/plain");
            resp.getWriter().print("tomcat resolved " + req.getMethod() + " " + path);
        }
    }

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(Files.createTempDirectory("l7gate-tomcat").toString());
        Connector connector = new Connector();
        connector.setPort(0);
        connector.setProperty("address", "127.0.0.1");
        tomcat.getService().addConnector(connector);
        tomcat.setConnector(connector);
        Context context = tomcat.addContext("", null);
        Tomcat.addServlet(context, "resolve", new Resolve());
        context.addServletMappingDecoded("/*", "resolve");
        tomcat.start();
        System.out.println("listening " + connector.getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }
}
